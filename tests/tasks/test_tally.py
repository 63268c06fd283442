"""The `tally` task: traces of every granularity are right, folds parse back, splits are disjoint, bad settings fail."""

import random
import re

import pytest

from frugalthink.organisms.tiny import build_tokenizer
from frugalthink.tasks import get_task
from frugalthink.tasks.grading import grade_many
from frugalthink.tasks.tally import (
    TallyConfig,
    TallyTask,
    answer_of,
    even_folds,
    plan_folds,
    split_of,
    trace_folds,
    verbose_completion,
    write_trace,
)
from frugalthink.util.errors import UserError


def replay(digits: str, completion: str) -> int:
    """Follow the written steps: each ``...+T=N`` must add its named digits to the previous total."""
    total = int(digits[0])
    body = completion.split("</think>")[0]
    for m in re.finditer(r"((?:[A-Z]\d)+)\+(\d+)=(\d+)", body):
        named = [int(c) for c in m.group(1)[1::2]]
        assert int(m.group(2)) == total, (completion, m.group(0))
        assert int(m.group(3)) == total + sum(named), (completion, m.group(0))
        total = int(m.group(3))
    return total


def test_hand_written_traces():
    assert write_trace("35814", [1, 1, 1, 1]) == "<think>B5+3=8C8+8=16D1+16=17E4+17=21</think>\\boxed{21}"
    assert write_trace("35814", [2, 2]) == "<think>B5C8+3=16D1E4+16=21</think>\\boxed{21}"
    assert write_trace("35814", [4]) == "<think>B5C8D1E4+3=21</think>\\boxed{21}"
    assert write_trace("35814", [3, 1]) == "<think>B5C8D1+3=17E4+17=21</think>\\boxed{21}"
    with pytest.raises(ValueError):
        write_trace("35814", [2, 1])
    assert even_folds(8, 3) == [3, 3, 2] and even_folds(2, 4) == [2]
    rng = random.Random(0)
    checked = write_trace("35814", [2, 2], rng, check_rate=1.0)
    assert "(3+8+5=16)" in checked and "(16+4+1=21)" in checked


def test_modulus_reduces_every_written_result():
    assert write_trace("35814", [1, 1, 1, 1], modulus=10) == "<think>B5+3=8C8+8=6D1+6=7E4+7=1</think>\\boxed{1}"
    assert write_trace("35814", [2, 2], modulus=10) == "<think>B5C8+3=6D1E4+6=1</think>\\boxed{1}"
    assert answer_of("35814", 10) == 1 and answer_of("35814") == 21 and answer_of("35814", 7, 10) == 0
    task = get_task("tally", config={"modulus": 10, "min_level": 12, "max_level": 14})
    task.cfg.validate()  # long levels are allowed with a modulus
    p = task.load("validation")[-1]
    assert p.level == 14 and p.answer == str(sum(map(int, p.id)) % 10)
    assert p.meta["oracle_completion"] == write_trace(p.id, [1] * 14, modulus=10)


def test_answer_mod_boxes_the_last_digit_of_a_plain_trace():
    assert (write_trace("35814", [1, 1, 1, 1], answer_mod=10)
            == "<think>B5+3=8C8+8=16D1+16=17E4+17=21</think>\\boxed{1}")
    assert answer_of("35814", answer_mod=10) == 1 and answer_of("9999", answer_mod=7) == 36 % 7
    from frugalthink.tasks.tally import residue

    assert residue(21, 10) == 1 and residue(21, 0) == 21
    task = get_task("tally", config={"answer_mod": 10})
    p = task.load("test")[-1]
    assert p.answer == str(sum(map(int, p.id)) % 10)
    assert p.meta["oracle_completion"] == write_trace(p.id, [1] * p.level, answer_mod=10)
    from frugalthink.tasks.tally import answer_only_completion

    assert answer_only_completion("35814", answer_mod=10) == "<think></think>\\boxed{1}"
    rng = random.Random(3)
    cfg = TallyConfig(answer_mod=10, coarse_share=0.5)
    for _ in range(50):
        digits = "".join(str(rng.randrange(10)) for _ in range(9))
        completion = verbose_completion(digits, rng, cfg)
        assert replay(digits, completion) == sum(map(int, digits))  # the written totals stay plain
        assert grade_many([completion], [str(answer_of(digits, answer_mod=10))], kind="exact")[0].correct


def test_mixed_prob_folds_pairs_in_ordinary_traces():
    rng = random.Random(4)
    digits = "3581492761"
    plain = TallyConfig(coarse_share=0.0, mixed_prob=(0.0, 0.0))
    assert all(trace_folds(verbose_completion(digits, rng, plain)) == [1] * 9 for _ in range(50))
    mixed = TallyConfig(coarse_share=0.0, mixed_prob=(0.3, 0.3), mixed_until=0)
    folds = [f for _ in range(300) for f in trace_folds(verbose_completion(digits, rng, mixed))]
    assert set(folds) == {1, 2}  # ordinary traces fold pairs only, whatever max_fold is
    share = folds.count(2) / len(folds)  # a step folds with p = 0.3; 2-folds among written steps ~ 0.3 / 1.0
    assert 0.2 < share < 0.4
    unfolded = TallyConfig(coarse_share=0.0, mixed_prob=(1.0, 1.0), mixed_until=0, max_fold=1)
    assert all(trace_folds(verbose_completion(digits, rng, unfolded)) == [1] * 9 for _ in range(20))


def test_mixed_until_folds_only_while_the_total_is_small():
    from frugalthink.tasks.tally import plan_mixed

    rng = random.Random(5)
    # totals before each step: 9, 18, 27, 36, ... -> fold odds 0.7, 0.4, 0.1, then none (rate 1, until 30)
    counts = [0, 0, 0, 0]
    for _ in range(400):
        plan = plan_mixed("9" * 9, rng, 1.0, 30)
        assert sum(plan) == 8 and set(plan) <= {1, 2}
        total = 9
        for f in plan:
            band = min(total // 9 - 1, 3)
            counts[band] += f == 2
            total += 9 * f
    assert counts[3] == 0 and counts[0] > counts[1] > counts[2] > 0
    assert plan_mixed("12345", random.Random(0), 0.0, 30) == [1, 1, 1, 1]
    assert plan_mixed("00000", random.Random(0), 1.0, 0) == [2, 2]  # until 0: the rate throughout
    cfg = TallyConfig(coarse_share=0.0, mixed_prob=(1.0, 1.0), mixed_until=30)
    assert trace_folds(verbose_completion("999999999", random.Random(1), cfg))[-1] == 1


def test_opening_hesitation_does_not_grow_with_the_level():
    from frugalthink.tasks.chain import FILLERS

    def opening_phrases(completion: str) -> int:
        head, n = completion[len("<think>"):], 0
        longest_first = sorted(FILLERS, key=len, reverse=True)  # " wait," is a prefix of " wait, is that right?"
        while (match := next((f for f in longest_first if head.startswith(f)), None)) is not None:
            head, n = head[len(match):], n + 1
        assert head[0] in "BCDEFGHIJ", completion  # then the first step
        return n

    rng = random.Random(3)
    cfg = TallyConfig(coarse_share=0.0, opening=(1, 3), check_prob=(0.0, 0.0), filler_prob=(0.0, 0.0))
    for digits in ("358", "358149276"):
        counts = [opening_phrases(verbose_completion(digits, rng, cfg)) for _ in range(300)]
        assert set(counts) == {1, 2, 3} and 1.8 < sum(counts) / len(counts) < 2.2  # the same at every level
    for completion in (verbose_completion("3581", rng, cfg, terse=True) for _ in range(50)):
        assert opening_phrases(completion) == 0  # terse traces open with a step
    assert all(opening_phrases(verbose_completion("3581", rng, cfg, verbosity=0.0)) == 0 for _ in range(20))
    with pytest.raises(ValueError, match="rng"):
        write_trace("358", [1, 1], opening=1)


@pytest.mark.parametrize("level", [1, 2, 5, 8, 10])
def test_verbose_traces_are_right_and_folds_parse_back(level):
    rng = random.Random(level)
    cfg = TallyConfig(max_level=10, coarse_share=0.5, coarse_prob=(0.0, 1.0))
    seen_folds = set()
    for _ in range(200):
        digits = "".join(str(rng.randrange(10)) for _ in range(level + 1))
        state = rng.getstate()
        completion = verbose_completion(digits, rng, cfg)
        rng.setstate(state)
        rng.uniform(*cfg.coarse_prob)
        plan = plan_folds(level, random.Random(0), 0.0, 4)
        assert plan == [1] * level
        assert replay(digits, completion) == sum(map(int, digits))  # plain totals written
        answer = answer_of(digits, answer_mod=cfg.answer_mod)  # the default answer: the total's last digit
        assert cfg.answer_mod == 10 and completion.endswith(f"\\boxed{{{answer}}}")
        folds = trace_folds(completion)
        assert sum(folds) == level and max(folds) <= cfg.max_fold
        seen_folds |= set(folds)
        assert grade_many([completion], [str(answer)], kind="exact")[0].correct
    if level >= 4:
        assert seen_folds == {1, 2, 3, 4}


def test_plan_folds_rates():
    rng = random.Random(1)
    fine = [plan_folds(8, rng, 0.0, 4) for _ in range(100)]
    assert all(p == [1] * 8 for p in fine)
    coarse = [plan_folds(8, rng, 1.0, 4) for _ in range(200)]
    assert all(sum(p) == 8 and all(f >= 2 for f in p[:-1]) for p in coarse)
    assert all(plan_folds(6, rng, 1.0, 1) == [1] * 6 for _ in range(10))


def test_splits_are_disjoint_and_seeded():
    task = TallyTask()
    test, val, train = (task.load(s) for s in ("test", "validation", "train"))
    ids = [{p.id for p in ps} for ps in (test, val, train)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert {split_of(d) for d in ids[0]} == {"test"} and {split_of(d) for d in ids[1]} == {"validation"}
    assert {split_of(d) for d in ids[2]} == {"train"}
    rng = random.Random(7)  # the buckets are 1 : 1 : 8
    draws = [split_of(str(rng.randrange(10**9))) for _ in range(20000)]
    shares = {s: draws.count(s) / len(draws) for s in ("test", "validation", "train")}
    assert shares == pytest.approx({"test": 0.1, "validation": 0.1, "train": 0.8}, abs=0.015)
    assert sorted({p.level for p in test}) == list(range(2, 9))
    assert len(test) == len(val) == 50 + 250 * 6  # level 2 has 100 test strings; half of them at most
    assert [p.id for p in TallyTask().load("test")] == [p.id for p in test]
    for p in test:
        assert p.answer == str(answer_of(p.id, answer_mod=10)) and len(p.id) == p.level + 1
    with pytest.raises(UserError, match="unknown split"):
        task.load("dev")


def test_oracle_tokens_are_the_fine_trace():
    tok = build_tokenizer()
    task = get_task("tally", config={"min_level": 2, "max_level": 3}).with_token_counter(
        lambda text: len(tok(text, add_special_tokens=False)["input_ids"]) + 1)
    p = task.load("test")[0]
    assert p.meta["oracle_completion"] == write_trace(p.id, [1] * p.level, answer_mod=10)
    assert p.oracle_tokens == len(tok(p.meta["oracle_completion"], add_special_tokens=False)["input_ids"]) + 1
    assert "<unk>" not in tok.decode(tok(p.meta["oracle_completion"])["input_ids"])


@pytest.mark.parametrize("config, message", [
    ({"max_level": 11}, "two-digit totals"),
    ({"max_fold": 11}, "max_fold"),
    ({"coarse_prob": [0.5, 0.2]}, "coarse_prob"),
    ({"levels": 3}, "levels"),
    ({"modulus": 1}, "modulus must be 0"),
    ({"modulus": 10, "max_level": 26}, "one label per digit"),
    ({"answer_mod": 1}, "answer_mod must be 0"),
    ({"mixed_prob": [0.3, 0.1]}, "mixed_prob"),
    ({"mixed_until": -1}, "mixed_until"),
    ({"opening": [2, 1]}, "opening"),
    ({"opening": [0, 11]}, "opening"),
])
def test_bad_settings_name_the_field(config, message):
    with pytest.raises(UserError, match=message):
        get_task("tally", config=config).cfg.validate()


def test_unknown_task_option():
    with pytest.raises(UserError, match="unknown task option"):
        get_task("tally", levels=3)
