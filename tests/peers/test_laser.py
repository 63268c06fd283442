"""Laser, Laser-D and Laser-DE: the rewards on hand-made groups, Laser-DE's repetition check, the monitor's target
rule, and its state across a resume."""

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_runs import run_train, save_tiny_model

from frugalthink.peers import laser
from frugalthink.peers.rewards import (
    laser_bucket,
    laser_d_rewards,
    laser_de_rewards,
    laser_rewards,
    repeats_itself,
)


def test_laser_pinned_and_ordered():
    got = laser_rewards([True, True, False, False], [10, 30, 5, 50], [True, True, True, False], [20] * 4)
    assert got == [1.5, 1.0, -0.5, -1.0]
    assert laser_rewards([True], [20], [True], [20]) == [1.5]  # at the target still earns the bonus


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(1, 300)), min_size=1, max_size=12),
       st.integers(1, 300))
def test_laser_orders_short_right_over_long_right_over_wrong(samples, target):
    correct = [c for c, _, _ in samples]
    formed = [c or f for c, f, _ in samples]
    lengths = [n for _, _, n in samples]
    for c, f, n, r in zip(correct, formed, lengths, laser_rewards(correct, lengths, formed, [target] * len(correct)),
                          strict=True):
        assert r == (1.5 if c and n <= target else 1.0 if c else -0.5 if f else -1.0)


def test_laser_d_buckets_by_the_groups_own_accuracy():
    assert [laser_bucket(a) for a in (0, 0.3, 1 / 3, 0.5, 0.66, 2 / 3, 1)] == [
        "low", "low", "medium", "medium", "medium", "high", "high"]
    targets = {"low": 100, "medium": 50, "high": 20}
    # group a: 3 of 3 right (high, 20 tokens); group b: 1 of 3 right (medium, 50); group c: none (low)
    got = laser_d_rewards([True] * 3 + [True, False, False] + [False] * 2, [30, 15, 60, 40, 9, 9, 9, 300],
                          list("aaabbbcc"), [True] * 7 + [False], targets)
    assert got == [1.0, 1.5, 1.0, 1.5, -0.5, -0.5, -0.5, -1.0]


def test_laser_de_gives_long_wrong_answers_that_do_not_loop_the_bonus():
    targets = {"low": 100, "medium": 50, "high": 20}
    correct = [True] * 3 + [True, False, False] + [False] * 4
    lengths = [30, 15, 60, 40, 9, 70, 9, 300, 120, 120]
    formed = [True] * 7 + [False, True, True]
    repeated = [False] * 9 + [True]
    groups = list("aaabbbcccc")
    got = laser_de_rewards(correct, lengths, groups, formed, targets, repeated)
    # a (high, 20): as Laser-D. b (medium, 50): the wrong 70-token answer gets the bonus (-0.5 + 0.5), the wrong
    # 9-token one not. c (low, 100): 9 tokens: short; 300 unformed: -1 always; 120 formed: bonus; 120 looping: none
    assert got == [1.0, 1.5, 1.0, 1.5, -0.5, 0.0, -0.5, -1.0, 0.0, -0.5]
    # everything else is Laser-D's
    d = laser_d_rewards(correct, lengths, groups, formed, targets)
    assert [x - y for x, y in zip(got, d, strict=True)] == [0, 0, 0, 0, 0, 0.5, 0, 0, 0.5, 0]
    assert laser_de_rewards([False], [20], ["g"], [True], {"low": 20}, [False]) == [-0.5]  # at the target: no bonus


def test_repetition_check_by_its_rules():
    distinct = list(range(1, 60))
    assert not repeats_itself(distinct) and not repeats_itself([7] * 8)  # <= 8 tokens never loops
    assert repeats_itself([5, 5, 5, 1, 2, 3, 4, 6, 7, 8, 9, 10])  # bigrams of one token repeated count (only n > 2 skips)
    assert not repeats_itself([5, 5, 5, 1, 2, 3, 4, 6, 7, 8, 9, 10] + list(range(20, 40)))  # trigram (5, 5, 5): skipped
    assert repeats_itself([5] * 40)  # ... but a run of one token repeats its 6-token spans
    # 12 tokens: bigrams, threshold 2, window 12 // 3 = 4 -> (1, 2) again 2 tokens later is a loop, 8 later is not
    assert repeats_itself([1, 2, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12])
    assert not repeats_itself([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 9, 10])
    # 50 tokens: trigrams; the 6-token span (1..6) twice, 30 apart (beyond the window of 16), is a loop by the span rule
    span = [1, 2, 3, 4, 5, 6]
    filler = list(range(100, 124))
    assert repeats_itself(span + filler + span + list(range(200, 214)))
    assert not repeats_itself([1, 2, 3] + filler + [1, 2, 3] + list(range(300, 320)))  # a trigram twice, far apart
    # 210 tokens: 4-grams and a threshold of 3: two close occurrences are not yet a loop, three are
    long = list(range(1000, 1210))
    twice = long[:50] + [1, 2, 3, 4, 9, 1, 2, 3, 4] + long[59:]
    assert len(twice) == 210 and not repeats_itself(twice)
    thrice = long[:50] + [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4] + long[62:]
    assert len(thrice) == 210 and repeats_itself(thrice)


def _published_detector(tokens: list[int]) -> bool:
    """Test oracle: hkust-nlp/Laser ``detect_token_ngram_repetition_optimized_reversed``
    (verl/utils/reward_score/compute_unique_tokens.py, commit c9e7c4e) as Laser-DE calls it (defaults n=4; a loop
    when the returned position is short of the length), re-done step by step from its rules, scan order included."""
    size = len(tokens)
    if size <= 4 * 2:
        return False
    n = 2 if size < 30 else 3 if size < 100 else 4
    threshold = 2 if size < 200 else 3
    positions: dict[tuple, list[int]] = {}
    for i in reversed(range(size - n + 1)):
        gram = tuple(tokens[i : i + n])
        if len(gram) > 2 and len(set(gram)) == 1:
            continue
        positions.setdefault(gram, []).append(i)
        if len(positions[gram]) >= threshold:
            ordered = sorted(positions[gram])
            if any(ordered[k + 1] - ordered[k] < size // 3 for k in range(len(ordered) - 1)):
                return True
    if size >= 4 * n:
        patterns: dict[tuple, int] = {}
        for i in reversed(range(size - 2 * n + 1)):
            pattern = tuple(tokens[i : i + 2 * n])
            if pattern in patterns:
                return True
            patterns[pattern] = i
    return False


def _loopy_sequence(rng: random.Random) -> list[int]:
    """1..400 tokens from a small or large vocabulary; half of them with one span copied to 1-3 random places."""
    size = rng.randint(1, 400)
    vocab = rng.choice([3, 8, 30, 200, 5000])
    ids = [rng.randrange(vocab) for _ in range(size)]
    if size > 4 and rng.random() < 0.5:
        k = rng.randint(1, min(12, size // 2))
        for at in rng.sample(range(size - k + 1), rng.randint(1, 3)):
            ids[at : at + k] = ids[:k]
    return ids


# sequences on which the check (before issue 29's fix) and the published detector differed: the published one loops
_DIFFERED = [
    [0, 1, 2, 2, 1, 1, 1, 1, 2],  # bigram (1, 1) close by: one token repeated counts for bigrams
    [0, 2, 0, 0, 0, 0, 1, 1, 0, 2],
    [5, 5, 3, 7, 7, 5, 7, 2, 5, 5, 5, 0, 0, 2, 0],
    [0, 4, 6, 1, 7, 5, 2, 2, 2, 6, 5, 0, 6, 4, 6, 2, 5],
    # 210 tokens: (1, 2, 3, 4) at 0, 100, 104: three occurrences, and *some* successive two within 210 // 3
    [1, 2, 3, 4] + list(range(1000, 1096)) + [1, 2, 3, 4] * 2 + list(range(2000, 2102)),
]


@pytest.mark.parametrize("ids", _DIFFERED, ids=[f"len{len(x)}" for x in _DIFFERED])
def test_repetition_check_regressions_from_the_published_detector(ids):
    assert _published_detector(ids) and repeats_itself(ids)


def test_repetition_check_equals_the_published_detector_on_random_sequences():
    rng = random.Random(29)
    seqs = [_loopy_sequence(rng) for _ in range(3000)]
    verdicts = [_published_detector(x) for x in seqs]
    assert 0.3 < sum(verdicts) / len(seqs) < 0.7  # the draw has loops often, and not always
    differ = [x for x, v in zip(seqs, verdicts, strict=True) if repeats_itself(x) != v]
    assert not differ, f"{len(differ)} differ, the shortest: {min(differ, key=len)}"


def test_target_rule_by_band():
    lens = [10, 20, 30, 40, 50]
    assert laser.choose_target(lens, [16, 32, 48, 64], laser.band_size("high", 8)) == 16  # coverage 0.2 suffices
    assert laser.choose_target(lens, [16, 32, 48, 64], laser.band_size("medium", 8)) == 32  # needs 0.5
    assert laser.choose_target(lens, [16, 32, 48, 64], laser.band_size("low", 8)) == 64  # needs all
    assert laser.choose_target(lens, [16, 32], laser.band_size("low", 8)) is None  # none covers: the fallback
    assert laser.choose_target([], [16], 5) is None
    assert [laser.band_size(b, 8) for b in laser.BANDS] == [1, 2, 5]
    assert [laser.monitor_band(a) for a in (0, 1 / 3, 0.5, 2 / 3, 0.7, 1)] == [
        "low", "low", "medium", "medium", "high", "high"]
    per_prompt = [([True] * 8, [10] * 8), ([True] * 4 + [False] * 4, [30] * 8), ([False] * 8, [90] * 8)]
    assert laser.choose_targets(per_prompt, laser.default_grid(128), 8) == {"low": 96, "medium": 32, "high": 16}


def test_monitor_state_round_trip(tmp_path):
    m = laser.LaserMonitor(None, None, [], [], {"monitor_every": 20, "monitor_samples": 8, "monitor_temperature": 0.6,
                                                "expected_correct": 1}, 256, {1})
    assert m.due(0) and m.bucket_targets(fallback=77) == {"low": 77, "medium": 77, "high": 77}
    m.targets, m.rollout = {"low": 200, "medium": None, "high": 48}, 20
    assert not m.due(20) and not m.due(21) and m.due(40)
    m.save(tmp_path)
    other = laser.LaserMonitor(None, None, [], [], {"monitor_every": 20, "monitor_samples": 8,
                                                    "monitor_temperature": 0.6, "expected_correct": 1}, 256, {1})
    assert other.load(tmp_path) and other.targets == m.targets and other.rollout == 20
    assert not other.load(tmp_path / "missing")


@pytest.mark.parametrize("reward", ["laser_d", "laser_de"])
def test_laser_d_trains_measures_on_schedule_and_resumes_with_its_targets(tmp_path, reward):
    save_tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    common = ["--set", f"model={tmp_path / 'm'}", "--set", "rollouts=3", "--set", "prompts_per_rollout=4",
              "--set", "max_completion_length=16", "--set", "save_every=1", "--set", "threads=1",
              "--set", f"reward={reward}", "--set", "alpha=0", "--set", "reward_options.monitor_prompts=3",
              "--set", "reward_options.monitor_every=1", "--set", "reward_options.monitor_samples=3",
              "--out", str(out)]
    crashed = run_train(common, env={"FRUGALTHINK_KILL_AT_STEP": "4"})  # killed after rollout 2's checkpoint
    assert crashed.returncode != 0
    assert crashed.stdout.count("laser-d monitor") == 3  # before rollouts 0, 1 and 2
    state = json.loads((out / "checkpoint-4" / laser.STATE_FILE).read_text())
    assert state["rollout"] == 2 and set(state["targets"]) == set(laser.BANDS)
    resumed = run_train(common + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # rollout 2's targets came back from the checkpoint, and nothing is measured after the last rollout
    assert "laser-d monitor" not in resumed.stdout
    assert json.loads((out / "checkpoint-6" / laser.STATE_FILE).read_text()) == state
