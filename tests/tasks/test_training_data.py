"""The paper's training data path: a Hub-format dataset whose gold is the last \\boxed{} of a worked solution."""

import json

import pytest

from frugalthink.tasks import get_task
from frugalthink.util.errors import UserError

ROWS = [
    {"problem": "What is 1+2?", "solution": "1+2 = \\boxed{3}."},
    {"problem": "Half of 8?", "solution": "First \\boxed{2}? No: 8/2 = \\boxed{4}"},  # the last box is the gold
    {"problem": "Prove it.", "solution": "By induction, as required."},  # no box: never gradeable, dropped
    {"problem": "Empty?", "solution": "so \\boxed{}"},  # empty box: dropped
    {"problem": "Cut?", "solution": "so \\boxed{\\frac{1}{2}"},  # unbalanced: dropped
    {"problem": "x?", "solution": "x = \\boxed{\\frac{1}{2}}"},
]


@pytest.fixture
def local_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    d = tmp_path / "compression_dataset"
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return d


def test_boxed_gold_drops_unparseable_rows_and_says_how_many(local_dataset, capsys):
    task = get_task(f"hf:{local_dataset}", split="train", problem_field="problem", answer_field="solution",
                    gold="boxed")
    problems = task.load()
    assert [p.answer for p in problems] == ["3", "4", "\\frac{1}{2}"]
    assert [p.question for p in problems] == ["What is 1+2?", "Half of 8?", "x?"]  # dataset order kept
    assert "dropped 3 of 6 rows" in capsys.readouterr().out


def test_text_gold_keeps_every_row(local_dataset):
    task = get_task(f"hf:{local_dataset}", split="train", problem_field="problem", answer_field="solution")
    assert len(task.load()) == len(ROWS)


@pytest.mark.parametrize("options,message", [
    ({"gold": "last"}, "task_options.gold"),
    ({"message": "{instruction} only"}, "must contain {question}"),
    ({"message": "{question} {answer}"}, "not a valid template"),
])
def test_bad_options_are_one_line_errors(local_dataset, options, message):
    with pytest.raises(UserError, match=message):
        get_task(f"hf:{local_dataset}", **options)


def test_missing_field_names_the_field(local_dataset):
    with pytest.raises(UserError, match="missing field 'question'"):
        get_task(f"hf:{local_dataset}", split="train", problem_field="question").load()
