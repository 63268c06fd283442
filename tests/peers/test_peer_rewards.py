"""Peer length rewards: pinned numbers on hand-made groups, the properties each paper states, and agreement with
TRL's implementations where TRL has one (cosine, DAPO overlong)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalthink.peers.rewards import (
    cosine_rewards,
    dapo_overlong_penalty,
    dapo_rewards,
    grpo_lead_rewards,
    kimi_length_rewards,
    l1_max_rewards,
    shorter_better_rewards,
    truncation_rewards,
)

# One hand-made group of 5: lengths 10..50, samples 0, 2, 3 correct.
C = [True, False, True, True, False]
N = [10, 20, 30, 50, 40]
G = ["q"] * 5

groups = st.lists(st.tuples(st.booleans(), st.integers(1, 400)), min_size=1, max_size=10)


# ---- Kimi k1.5 ------------------------------------------------------------------------------------------------

def test_kimi_pinned():
    # min 10, max 50: lambda = 0.5 - (n - 10) / 40 = [0.5, 0.25, 0, -0.5, -0.25]
    assert kimi_length_rewards(C, N, G) == pytest.approx([1.5, 0.0, 1.0, 0.5, -0.25])
    assert kimi_length_rewards(C, N, G, weight=0.5) == pytest.approx([1.25, 0.0, 1.0, 0.75, -0.125])


def test_kimi_equal_lengths_is_plain_correctness():
    assert kimi_length_rewards([True, False], [7, 7], ["a", "a"]) == [1.0, 0.0]


@given(groups)
def test_kimi_properties(g):
    correct, lengths = [c for c, _ in g], [n for _, n in g]
    r = kimi_length_rewards(correct, lengths, ["q"] * len(g))
    for ri, ci in zip(r, correct, strict=True):
        if ci:
            assert 0.5 - 1e-9 <= ri <= 1.5 + 1e-9
        else:
            assert -0.5 - 1e-9 <= ri <= 0.0  # a wrong answer is never rewarded for being short
    for i in range(len(g)):
        for j in range(len(g)):
            if correct[i] and correct[j] and lengths[i] < lengths[j]:
                assert r[i] > r[j]


# ---- L1-Max ---------------------------------------------------------------------------------------------------

def test_l1_max_pinned():
    # alpha 0.01, target 30: clip(0.01 * (30 - n) + 0.5, 0, 1)
    assert l1_max_rewards(C, N, [30] * 5, alpha=0.01) == pytest.approx([0.7, 0.0, 0.5, 0.3, 0.0])
    assert l1_max_rewards([True, True], [60, 200], [100, 100], alpha=0.01) == pytest.approx([0.9, 0.0])
    assert l1_max_rewards([True], [0], [100], alpha=0.1) == [1.0]  # clipped at 1


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), st.floats(1e-4, 0.1))
def test_l1_max_monotone_and_bounded(n1, n2, target, alpha):
    r1, r2 = l1_max_rewards([True, True], [n1, n2], [target, target], alpha)
    assert 0.0 <= r1 <= 1.0 and 0.0 <= r2 <= 1.0
    if n1 < n2:
        assert r1 >= r2
    assert l1_max_rewards([True], [target], [target], alpha) == [0.5]
    assert l1_max_rewards([False], [n1], [target], alpha) == [0.0]


# ---- ShorterBetter --------------------------------------------------------------------------------------------

def test_shorter_better_pinned():
    # SOL = 10 (shortest correct); r = 2 * correct - 0.01 * |n - 10|
    assert shorter_better_rewards(C, N, G, alpha=2.0, beta=0.01) == pytest.approx([2.0, -0.1, 1.8, 1.6, -0.3])
    # no correct sample: SOL = mean length 30
    assert shorter_better_rewards([False] * 3, [20, 30, 40], ["q"] * 3, 2.0, 0.01) == pytest.approx([-0.1, 0, -0.1])


@given(groups)
def test_shorter_better_properties(g):
    correct, lengths = [c for c, _ in g], [n for _, n in g]
    r = shorter_better_rewards(correct, lengths, ["q"] * len(g), alpha=2.0, beta=0.01)
    if any(correct):
        best = min(n for c, n in g if c)
        assert max(r) == pytest.approx(2.0)  # the shortest correct sample sits exactly at SOL
        for ri, ci, ni in zip(r, correct, lengths, strict=True):
            assert ri == pytest.approx(2.0 * ci - 0.01 * abs(ni - best))
    assert all(ri <= 2.0 + 1e-9 for ri in r)


# ---- GRPO-LEAD ------------------------------------------------------------------------------------------------

def test_grpo_lead_pinned():
    # correct lengths 10, 30, 50: mean 30, population std sqrt(800/3) = 16.33
    z = [(n - 30) / math.sqrt(800 / 3) for n in (10, 30, 50)]
    expected = [math.exp(-0.1 * z[0]), -1.0, 1.0, math.exp(-0.1 * z[2]), -1.0]
    assert grpo_lead_rewards(C, N, G, alpha=0.1) == pytest.approx(expected)
    assert grpo_lead_rewards(C, N, G, alpha=0.1)[0] == pytest.approx(1.1303, abs=1e-4)


@given(groups)
def test_grpo_lead_properties(g):
    correct, lengths = [c for c, _ in g], [n for _, n in g]
    r = grpo_lead_rewards(correct, lengths, ["q"] * len(g), alpha=0.1)
    for ri, ci in zip(r, correct, strict=True):
        assert (ri > 0) if ci else (ri == -1.0)
    for i in range(len(g)):
        for j in range(len(g)):
            if correct[i] and correct[j] and lengths[i] < lengths[j]:
                assert r[i] > r[j]


# ---- cosine (TRL) ---------------------------------------------------------------------------------------------

def test_cosine_pinned():
    r = cosine_rewards([True, True, True, False, False], [0, 50, 100, 0, 150], max_len=100)
    assert r == pytest.approx([1.0, 0.75, 0.5, -1.0, -0.5])


def test_cosine_matches_trl():
    from trl.rewards import get_cosine_scaled_reward

    lengths = [0, 7, 25, 50, 80, 100, 130]
    correct = [True, False, True, False, True, True, False]
    completions = [[{"content": f"\\boxed{{{3 if ok else 4}}}"}] for ok in correct]
    trl_r = get_cosine_scaled_reward(max_len=100)(completions, ["$3$"] * len(lengths), [[0] * n for n in lengths])
    assert cosine_rewards(correct, lengths, max_len=100) == pytest.approx(trl_r)


@given(st.integers(0, 500), st.integers(0, 500))
def test_cosine_correct_always_beats_wrong_and_shorter_correct_wins(n1, n2):
    rc = cosine_rewards([True, True], [n1, n2], max_len=256)
    rw = cosine_rewards([False], [n1], max_len=256)
    assert min(rc) >= 0.5 - 1e-9 and rw[0] <= -0.5 + 1e-9
    if n1 < n2:
        assert rc[0] >= rc[1]


# ---- DAPO soft overlong (TRL) ---------------------------------------------------------------------------------

def test_dapo_pinned_and_matches_trl():
    from trl.rewards import get_soft_overlong_punishment

    lengths = [10, 80, 81, 90, 100, 101, 400]
    ours = dapo_overlong_penalty(lengths, max_len=100, cache=20)
    assert ours == pytest.approx([0.0, 0.0, -0.05, -0.5, -1.0, -1.0, -1.0])
    assert ours == pytest.approx(get_soft_overlong_punishment(100, 20)([[0] * n for n in lengths]))
    assert dapo_rewards([True, False, True], [10, 10, 90], 100, 20) == pytest.approx([1.0, -1.0, 0.5])


@settings(max_examples=50)
@given(st.lists(st.integers(0, 600), min_size=1, max_size=20), st.integers(1, 256))
def test_dapo_silent_below_the_soft_limit(lengths, cache):
    pen = dapo_overlong_penalty(lengths, max_len=256, cache=cache)
    for n, p in zip(lengths, pen, strict=True):
        assert -1.0 <= p <= 0.0
        if n <= 256 - cache:
            assert p == 0.0


# ---- DLER truncation penalty ----------------------------------------------------------------------------------

def test_dler_pinned():
    assert truncation_rewards(C, N, limit=30) == [1.0, 0.0, 1.0, 0.0, 0.0]  # the correct 50 is past the limit
    assert truncation_rewards(C, N, limit=50) == [1.0, 0.0, 1.0, 1.0, 0.0]  # at the limit still counts


@given(groups, st.integers(1, 400))
def test_dler_is_correctness_below_the_limit_and_zero_above(group, limit):
    correct, lengths = [c for c, _ in group], [n for _, n in group]
    for ok, n, r in zip(correct, lengths, truncation_rewards(correct, lengths, limit), strict=True):
        assert r == (1.0 if ok and n <= limit else 0.0)


def test_dler_limit_defaults_to_the_generation_cap(tmp_path):
    from frugalthink.rl.recipe import RLRecipe

    assert RLRecipe(model="m", reward="dler", max_completion_length=96).resolved_reward_options() == {"limit": 96}
    assert RLRecipe(model="m", reward="dler", reward_options={"limit": 40}).resolved_reward_options() == {"limit": 40}
    # the other cap-relative defaults: Laser's target a quarter of the cap, cosine's and DAPO's L_max the cap
    assert RLRecipe(model="m", reward="laser", max_completion_length=256).resolved_reward_options()["target"] == 64
    assert RLRecipe(model="m", reward="cosine", max_completion_length=96).resolved_reward_options()["max_len"] == 96
    assert RLRecipe(model="m", reward="dapo", max_completion_length=100).resolved_reward_options() == {
        "max_len": 100, "cache": 20}
    with pytest.raises(ValueError):
        truncation_rewards([True], [3], limit=0)


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError):
        kimi_length_rewards([True], [1, 2], ["a", "a"])
    with pytest.raises(ValueError):
        l1_max_rewards([True], [1], [1, 2], 0.1)
    with pytest.raises(ValueError):
        dapo_overlong_penalty([1], max_len=10, cache=0)
