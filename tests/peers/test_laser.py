"""Laser, Laser-D and Laser-DE: the rewards on hand-made groups, Laser-DE's repetition check, the monitor's target
rule, and its state across a resume."""

import json

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
    assert not repeats_itself([5, 5, 5, 1, 2, 3, 4, 6, 7, 8, 9, 10])  # the n-gram (5, 5), one token repeated, is skipped
    assert repeats_itself([5] * 20)  # ... but a run of one token repeats its 4-token spans
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
