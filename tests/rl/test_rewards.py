"""Properties and pinned numbers of the method's reward (and the GRPO-style normalisation ablation)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalthink.rl.rewards import efficiency_rewards, group_std_normalize, sigmoid

alphas = st.floats(min_value=0.0, max_value=0.999, allow_nan=False)
groups_st = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=1, max_value=5000), st.sampled_from("abcd")), min_size=1, max_size=40
)


def test_pinned_numbers():
    r = efficiency_rewards([True, True, False], [10, 20, 5], ["q", "q", "q"], 0.2)
    assert r[0] == pytest.approx(1 - 0.2 * sigmoid(-1))
    assert r[1] == pytest.approx(1 - 0.2 * sigmoid(1))
    assert r[2] == 0.0
    # 4 correct lengths 10, 20, 30, 40: mean 25, population std sqrt(125)
    r = efficiency_rewards([True] * 4, [10, 20, 30, 40], [0] * 4, 0.4)
    std = math.sqrt(125)
    assert r == pytest.approx([1 - 0.4 * sigmoid((x - 25) / (std + 1e-7)) for x in (10, 20, 30, 40)])
    assert r == pytest.approx([0.9171, 0.8440, 0.7560, 0.6829], abs=1e-4)


def test_single_correct_and_equal_lengths_get_one_minus_half_alpha():
    assert efficiency_rewards([True, False, False], [50, 10, 90], ["g"] * 3, 0.4) == pytest.approx([0.8, 0, 0])
    assert efficiency_rewards([True] * 3, [7, 7, 7], ["g"] * 3, 0.2) == pytest.approx([0.9] * 3)


def test_groups_are_independent_and_may_interleave():
    correct = [True, True, True, True]
    lengths = [10, 100, 20, 100]
    groups = ["a", "b", "a", "b"]
    r = efficiency_rewards(correct, lengths, groups, 0.2)
    alone_a = efficiency_rewards([True, True], [10, 20], ["a", "a"], 0.2)
    assert [r[0], r[2]] == pytest.approx(alone_a)
    assert r[1] == r[3] == pytest.approx(0.9)


def test_alpha_out_of_range_raises():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            efficiency_rewards([True], [1], [0], bad)
    with pytest.raises(ValueError, match="differ in size"):
        efficiency_rewards([True, False], [1], [0, 0], 0.1)


@settings(max_examples=200, deadline=None)
@given(groups_st, alphas)
def test_properties(items, alpha):
    correct = [c for c, _, _ in items]
    lengths = [n for _, n, _ in items]
    groups = [g for _, _, g in items]
    r = efficiency_rewards(correct, lengths, groups, alpha)
    for i, ri in enumerate(r):
        if not correct[i]:
            assert ri == 0.0
        else:
            assert 1 - alpha - 1e-9 <= ri <= 1 + 1e-9
            assert ri > 0  # any correct beats any wrong (alpha < 1)
        for j, rj in enumerate(r):
            if groups[i] == groups[j] and correct[i] and correct[j]:
                if lengths[i] < lengths[j]:
                    assert ri >= rj  # shorter correct never scores lower (strictly higher when alpha > 0)
                    if alpha > 1e-6:
                        assert ri > rj
    if alpha == 0.0:
        assert r == [float(c) for c in correct]


@settings(max_examples=100, deadline=None)
@given(groups_st, alphas, st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=5000))
def test_invariant_to_length_shift_and_scale(items, alpha, scale, shift):
    """Only z-scores within a group matter: scaling and shifting all lengths leaves rewards unchanged (so counting
    the prompt's tokens too, as the official code does, would change nothing)."""
    correct = [c for c, _, _ in items]
    lengths = [n for _, n, _ in items]
    groups = [g for _, _, g in items]
    a = efficiency_rewards(correct, lengths, groups, alpha)
    b = efficiency_rewards(correct, [n * scale + shift for n in lengths], groups, alpha)
    assert a == pytest.approx(b, abs=1e-6)


def test_group_std_normalisation_removes_alpha_scale():
    """With per-group std normalisation, the advantages among correct answers no longer shrink with alpha."""
    lengths = [10, 20, 30, 40]
    groups = [0] * 4
    spreads = []
    for alpha in (0.05, 0.4):
        r = group_std_normalize(efficiency_rewards([True] * 4, lengths, groups, alpha), groups)
        spreads.append(max(r) - min(r))
    assert spreads[0] == pytest.approx(spreads[1], rel=0.01)
    raw = [efficiency_rewards([True] * 4, lengths, groups, a) for a in (0.05, 0.4)]
    assert (max(raw[1]) - min(raw[1])) / (max(raw[0]) - min(raw[0])) == pytest.approx(8, rel=0.01)
