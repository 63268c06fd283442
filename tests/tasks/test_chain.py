"""The synthetic `chain` task: determinism, disjoint splits, minimal-trace correctness, grading, tokenizer."""

import random
import re

import pytest

from frugalthink.organisms.tiny import build_tokenizer, count_tokens
from frugalthink.tasks import get_task
from frugalthink.tasks.base import Problem
from frugalthink.tasks.chain import (
    ChainConfig,
    ChainTask,
    answer_of,
    is_test,
    minimal_completion,
    prompt_of,
    verbose_completion,
)
from frugalthink.util.errors import UserError


def replay(digits: str, completion: str) -> int:
    """Follow a trace the way its format says: a check overrides the step before it."""
    body = completion.split("</think>")[0]
    s = int(digits[0])
    for m in re.finditer(r"[A-Z](\d)\+\d=(\d)(?:\((\d)\+(\d)=(\d)\))?", body):
        s = int(m.group(5)) if m.group(5) else int(m.group(2))
    return s


def test_generation_is_deterministic_and_splits_are_disjoint():
    a, b = ChainTask(), ChainTask()
    assert [p.id for p in a.load("test")] == [p.id for p in b.load("test")]
    assert [p.id for p in a.load("train")] == [p.id for p in b.load("train")]
    test_ids = {p.id for p in a.load("test")}
    train_ids = {p.id for p in a.load("train")}
    assert not test_ids & train_ids
    assert all(is_test(d) for d in test_ids) and not any(is_test(d) for d in train_ids)
    assert [p.id for p in ChainTask(ChainConfig(seed=1)).load("test")] != [p.id for p in a.load("test")]


def test_levels_and_sizes():
    task = ChainTask()
    test = task.load("test")
    levels = sorted({p.level for p in test})
    assert levels == list(range(2, 9)) and len(levels) >= 6
    for p in test:
        assert len(p.id) == p.level + 1
        assert p.answer == str(answer_of(p.id))
        assert p.question == prompt_of(p.id)
        assert p.question[::2][: len(p.id)] == "ABCDEFGHI"[: len(p.id)] and p.question[1::2][: len(p.id)] == p.id


@pytest.mark.parametrize("level", range(1, 12))
def test_minimal_trace_is_correct_at_every_level(level):
    rng = random.Random(level)
    for _ in range(50):
        digits = "".join(str(rng.randrange(10)) for _ in range(level + 1))
        m = minimal_completion(digits)
        assert replay(digits, m) == answer_of(digits)
        assert m.endswith(f"\\boxed{{{answer_of(digits)}}}")
        assert len(re.findall(r"[A-Z]\d\+\d=\d", m)) == level


def test_verbose_traces_are_correct_longer_and_repair_errors():
    cfg = ChainConfig(p_error=0.3)
    rng = random.Random(0)
    repaired = 0
    for _ in range(300):
        digits = "".join(str(rng.randrange(10)) for _ in range(8))
        v = verbose_completion(digits, rng, cfg)
        assert replay(digits, v) == answer_of(digits)
        assert len(v) >= len(minimal_completion(digits))
        steps = re.findall(r"[A-Z](\d)\+\d=(\d)(\((\d)\+(\d)=(\d)\))?", v)
        s = int(digits[0])
        for (d, written, check, _, _, fixed) in steps:
            right = (s + int(d)) % 10
            if int(written) != right:
                assert check, "a wrong step must be followed by a check"
                assert int(fixed) == right
                repaired += 1
            s = right
    assert repaired > 100


def test_grader_on_minimal_verbose_and_corrupted_traces():
    task = ChainTask()
    problems = task.load("test")[:40]
    rng = random.Random(0)
    minimal = [minimal_completion(p.id) for p in problems]
    verbose = [verbose_completion(p.id, rng, task.cfg) for p in problems]
    assert all(r.correct for r in task.grade(minimal, problems))
    assert all(r.correct for r in task.grade(verbose, problems))
    wrong = [m.replace(f"{{{p.answer}}}", f"{{{(int(p.answer) + 1) % 10}}}") for m, p in zip(minimal, problems)]
    assert not any(r.correct for r in task.grade(wrong, problems))
    cut = task.grade([m[:-3] for m in minimal], problems)
    assert not any(r.correct for r in cut)
    assert task.grade(minimal[:1], problems[:1], truncated=[True])[0].reason == "truncated"
    assert task.grade(["<think>B1+1=2"], [Problem("x", "", "2")])[0].reason == "unfinished_thinking"


def test_tokenizer_round_trip_and_counts():
    tok = build_tokenizer()
    rng = random.Random(1)
    for digits in ("358127", "90", "123456789"):
        text = prompt_of(digits) + verbose_completion(digits, rng, ChainConfig())
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.unk_token_id not in ids[1:] or tok.unk_token_id == tok.pad_token_id and tok.pad_token_id not in ids
    m = minimal_completion("3581")
    # <think> + 3 steps of 6 chars + </think> + \boxed{ + digit + } + EOS
    assert count_tokens(tok, m) == 1 + 18 + 1 + 1 + 1 + 1 + 1


def test_task_registry_and_bad_config():
    assert get_task("chain").name == "chain"
    with pytest.raises(UserError, match="unknown task"):
        get_task("nope")
    with pytest.raises(UserError, match="split"):
        ChainTask().load("validation")
    with pytest.raises(UserError, match="check_prob"):
        ChainConfig(check_prob=(0.9, 0.1)).validate()
