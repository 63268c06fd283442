"""Bad input is a one-line error naming the file, line, field or option -- never a traceback or a silent default."""

import json
from pathlib import Path

import pytest

from frugalthink.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY_RL = str(ROOT / "recipes" / "tiny" / "rl.yaml")


@pytest.mark.parametrize("argv,message", [
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--samples", "0"], "--samples: expected an integer >= 1"),
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--limit", "-3"], "--limit"),
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--limit", "0"], "--limit"),
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--temperature", "nan"], "finite number"),
    (["eval", "--model", "m", "--task", "chain", "--out", "o", "--latency-requests", "-1"], "--latency-requests"),
    (["grade", "--in", "x", "--out", "y", "--timeout", "-2"], "--timeout"),
    (["sweep", "--recipe", TINY_RL, "--out", "o", "--parallel", "0"], "--parallel"),
])
def test_bad_numbers_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def _write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return str(path)


CASES = {
    "sweep_fraction_seed": (["sweep", "--recipe", TINY_RL, "--seeds", "0.5", "--out", "{t}/f"], "seeds are integers"),
    "sweep_empty_alphas": (["sweep", "--recipe", TINY_RL, "--alphas", ",", "--out", "{t}/f"], "at least one"),
    "sweep_alpha_range": (["sweep", "--recipe", TINY_RL, "--alphas", "0.2,1.5", "--out", "{t}/f"], "[0, 1)"),
    "sweep_peer_recipe": (["sweep", "--recipe", str(ROOT / "recipes/tiny/peers/kimi.yaml"), "--out", "{t}/f"],
                          "reward 'kimi' has no alpha"),
    "train_alpha_peer": (["train", "--recipe", str(ROOT / "recipes/tiny/peers/kimi.yaml"), "--alpha", "0.2",
                          "--out", "{t}/r"], "--alpha: reward 'kimi' has no alpha"),
    "demo_alpha_range": (["demo", "--alphas", "1.5", "--out", "{t}/d"], "[0, 1)"),
    "set_into_scalar": (["train", "--recipe", TINY_RL, "--set", "model.x=1", "--out", "{t}/r"],
                        "model is 'runs/demo-chain/base', not a section"),
    "recipe_negative_temperature": (["train", "--recipe", TINY_RL, "--set", "temperature=-1", "--out", "{t}/r"],
                                    "temperature must be positive"),
    "recipe_text_for_number": (["train", "--recipe", TINY_RL, "--set", "rollouts=many", "--out", "{t}/r"],
                               "rollouts: expected an integer"),
    "negative_model_size": (["base", "--set", "model.hidden_size=-8", "--out", "{t}/b"],
                            "model.hidden_size must be a positive integer"),
    "train_missing_model": (["train", "--recipe", TINY_RL, "--set", "model={t}/nothing", "--out", "{t}/r"],
                            "could not load a tokenizer"),
    "unknown_task_option": (["eval", "--model", "{t}", "--task", "jsonl:{t}/d.jsonl", "--task-option", "colour=1",
                             "--out", "{t}/e"], "unknown task option(s) colour"),
    "benchmark_task_option": (["eval", "--model", "{t}", "--task", "gsm8k", "--task-option", "problem_field=q",
                               "--out", "{t}/e"], "unknown task option(s) problem_field"),
    "benchmark_missing_split": (["eval", "--model", "{t}", "--task", "gsm8k", "--split", "train", "--out", "{t}/e"],
                                "gsm8k: unknown split 'train' (it has: test)"),
    "chain_missing_split": (["eval", "--model", "{t}", "--task", "chain", "--split", "validation", "--out", "{t}/e"],
                            "chain: unknown split 'validation' (it has: train, test)"),
    "chain_task_option": (["eval", "--model", "{t}", "--task", "chain", "--task-option", "levels=3", "--out", "{t}/e"],
                          "task chain: unknown task option(s) levels"),
    "task_option_syntax": (["eval", "--model", "{t}", "--task", "chain", "--task-option", "oops", "--out", "{t}/e"],
                           "expected KEY=VALUE"),
    "grade_binary_input": (["grade", "--in", "{t}/bin.jsonl", "--out", "{t}/g.jsonl"], "not UTF-8 text"),
    "grade_dir_input": (["grade", "--in", "{t}", "--out", "{t}/g.jsonl"], "is a directory"),
    "grade_out_missing_folder": (["grade", "--in", "{t}/d.jsonl", "--out", "{t}/no/such/g.jsonl"], "does not exist"),
    "grade_out_is_dir": (["grade", "--in", "{t}/d.jsonl", "--out", "{t}"], "is a directory; give a file name"),
    "grade_null_gold": (["grade", "--in", "{t}/null.jsonl", "--out", "{t}/g.jsonl"], "null.jsonl:1: field 'answer'"),
    "compare_malformed_summary": (["compare", "{t}/ev", "{t}/ev"], "summary.json: missing field 'accuracy_ci95'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_naming_the_culprit(name, tmp_path, capsys):
    argv, message = CASES[name]
    _write(tmp_path / "d.jsonl", json.dumps({"problem": "1+2?", "answer": "3", "completion": "\\boxed{3}"}) + "\n")
    _write(tmp_path / "bin.jsonl", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    _write(tmp_path / "null.jsonl", json.dumps({"answer": None, "completion": "\\boxed{None}"}) + "\n")
    (tmp_path / "ev").mkdir()
    _write(tmp_path / "ev" / "summary.json", json.dumps({"accuracy": 1.0, "mean_tokens": 3}))
    code = main([a.replace("{t}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("answer", [None, [1, 2], {"x": 1}, True, ""])
def test_jsonl_answers_that_are_not_text_or_numbers_are_errors(tmp_path, answer):
    from frugalthink.tasks import get_task
    from frugalthink.util.errors import UserError

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "p", "answer": "3"}) + "\n" + json.dumps({"problem": "q", "answer": answer}))
    with pytest.raises(UserError, match=r"d.jsonl:2: field 'answer'"):
        get_task(f"jsonl:{path}").load("test")


def test_jsonl_splits_come_from_a_split_field_or_a_note_says_there_are_none(tmp_path, capsys):
    from frugalthink.tasks import get_task

    path = tmp_path / "d.jsonl"
    rows = [{"q": f"p{i}", "a": str(i), "part": "train" if i < 3 else "test"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = get_task(f"jsonl:{path}", problem_field="q", answer_field="a", split_field="part")
    assert [p.answer for p in task.load("train")] == ["0", "1", "2"]
    assert [p.answer for p in task.load("test")] == ["3", "4"]
    plain = get_task(f"jsonl:{path}", problem_field="q", answer_field="a")
    assert len(plain.load("validation")) == 5
    assert "has no split_field, so split 'validation' reads the whole file" in capsys.readouterr().out


def test_every_task_kind_refuses_a_split_it_lacks(tmp_path, monkeypatch, capsys):
    from frugalthink.tasks import get_task
    from frugalthink.util.errors import UserError

    for spec, split, message in (("math500", "validation", "math500: unknown split 'validation' (it has: test)"),
                                 ("tally", "dev", "tally: unknown split 'dev' (it has: train, validation, test)")):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            get_task(spec).load(split)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"q": "p", "a": "1", "part": part}) + "\n" for part in ("train", "test")))
    with pytest.raises(UserError, match=r"with part = 'validation' \(its part values: test, train\)"):
        get_task(f"jsonl:{path}", problem_field="q", answer_field="a", split_field="part").load("validation")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "train.jsonl").write_text(json.dumps({"problem": "p", "answer": "1"}) + "\n")
    with pytest.raises(UserError, match=r"Unknown split \"test\"\. Should be one of \['train'\]"):
        get_task(f"hf:{hub}").load("test")  # the hub's own error, in one line
    capsys.readouterr()
    assert len(get_task(f"hf:{hub}", split="train").load("test")) == 1  # the task option's split wins, and says so
    assert "task option split='train' is read, not split 'test'" in capsys.readouterr().err
