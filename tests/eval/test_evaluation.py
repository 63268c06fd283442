"""Records -> summary arithmetic on hand-made records, and the compare table."""

import json

import pytest

from frugalthink.eval.compare import comparison_rows, to_markdown
from frugalthink.eval.summary import percentile, summarize
from frugalthink.util.stats import mcnemar_exact, paired_bootstrap, seeded_paired_bootstrap, wilson_interval


def rec(pid, sample, correct, tokens, level=1, oracle=None, truncated=False, batch=0, batch_ms=100.0):
    return {"problem_id": pid, "sample": sample, "correct": correct, "tokens": tokens, "level": level,
            "oracle_tokens": oracle, "truncated": truncated, "reason": "correct" if correct else "mismatch",
            "batch": batch, "batch_ms": batch_ms}


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 90) == 10
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == pytest.approx(9.1)
    assert percentile([], 50) is None


def test_wilson_interval_does_not_collapse_and_matches_hand_numbers():
    # 30/40: p = 0.75, z = 1.96 -> centre 0.7281, half-width 0.1300 (Wilson's formula by hand)
    lo, hi = wilson_interval(30, 40)
    assert (round(lo, 3), round(hi, 3)) == (0.598, 0.858)
    lo, hi = wilson_interval(470, 470)
    assert hi == 1.0 and 0.99 < lo < 1.0  # all right is not "no uncertainty"
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.2


def test_mcnemar_exact_and_paired_bootstrap():
    # 9 items only a gets right, 1 only b: p = 2 * P[Bin(10, .5) <= 1] = 2 * 11/1024
    m = mcnemar_exact([True] * 9 + [False] + [True] * 5, [False] * 9 + [True] + [True] * 5)
    assert (m["a_only"], m["b_only"]) == (9, 1) and m["p"] == pytest.approx(22 / 1024)
    assert mcnemar_exact([True, False], [True, False])["p"] == 1.0
    same = paired_bootstrap([10, 20, 30], [10, 20, 30])
    assert same["mean_diff"] == 0 and same["p"] == 1.0
    shorter = paired_bootstrap([100 + i % 7 for i in range(200)], [60 + i % 5 for i in range(200)], seed=1)
    assert shorter["mean_diff"] < -30 and shorter["p"] < 0.01 and shorter["ci95"][1] < 0
    noisy = paired_bootstrap([i % 10 for i in range(100)], [(i * 7) % 10 for i in range(100)])
    assert noisy["p"] > 0.05


def test_seeded_paired_bootstrap_holds_the_spread_between_training_seeds():
    a = [100 + i % 7 for i in range(200)]
    # one run a side: the paired bootstrap itself, same numbers
    assert seeded_paired_bootstrap([a], [[x - 5 for x in a]], seed=3) == paired_bootstrap(a, [x - 5 for x in a], seed=3)
    # b's two seeds lie 10 below and 10 above a: mean 0, but no single-pair certainty either way
    b_runs = [[x - 10 for x in a], [x + 10 for x in a]]
    r = seeded_paired_bootstrap([a], b_runs)
    assert r["mean_diff"] == pytest.approx(0.0) and r["ci95"] == [-10.0, 10.0] and r["p"] > 0.5
    # b's seeds both shorter: still significant, the interval spans their spread
    r = seeded_paired_bootstrap([a, [x + 2 for x in a]], [[x - 10 for x in a], [x - 20 for x in a]])
    assert r["mean_diff"] == pytest.approx(-16.0) and r["ci95"][1] < 0 and r["ci95"][1] - r["ci95"][0] >= 10
    with pytest.raises(ValueError, match="equal length"):
        seeded_paired_bootstrap([a], [a[:-1]])


def test_summary_arithmetic():
    records = [
        rec("a", 0, True, 10, level=1, oracle=5, batch=0, batch_ms=200),
        rec("a", 1, False, 20, level=1, oracle=5, batch=0, batch_ms=200),
        rec("b", 0, True, 30, level=2, oracle=10, batch=1, batch_ms=300),
        rec("b", 1, True, 40, level=2, oracle=10, truncated=True, batch=1, batch_ms=300),
    ]
    latency = [{"problem_id": "a", "sample": 0, "tokens": 10, "latency_ms": 50.0},
               {"problem_id": "b", "sample": 0, "tokens": 30, "latency_ms": 150.0}]
    s = summarize(records, latency)
    assert s["accuracy"] == 0.75
    assert s["n_problems"] == 2
    assert s["mean_tokens"] == 25
    assert s["median_tokens"] == 25
    assert s["p90_tokens"] == pytest.approx(37.0)
    assert s["truncation_rate"] == 0.25
    assert s["oracle_mean_tokens"] == 7.5
    assert s["tokens_over_oracle"] == pytest.approx(25 / 7.5)
    assert s["by_level"]["1"] == {"n": 2, "accuracy": 0.5, "mean_tokens": 15, "oracle_mean_tokens": 5,
                                  "tokens_over_oracle": 3.0}
    assert s["by_level"]["2"]["accuracy"] == 1.0
    assert s["throughput"]["makespan_s"] == 0.5
    assert s["throughput"]["tokens_per_s"] == 200
    assert s["latency"]["p50_ms"] == 100
    assert s["latency"]["ms_per_token"] == 5
    assert s["reasons"] == {"correct": 3, "mismatch": 1}
    assert s["mean_tokens_correct"] == pytest.approx(80 / 3) and s["mean_tokens_wrong"] == 20
    assert "accuracy_at_budget" not in s  # no cap given
    budgets = summarize(records, cap=40)["accuracy_at_budget"]
    # cut at 10 / 20 / 30 / 40 tokens: only samples that were right and had finished by then stay right
    assert {k: (v["tokens"], v["accuracy"]) for k, v in budgets.items()} == {
        "25%": (10, 0.25), "50%": (20, 0.25), "75%": (30, 0.5), "100%": (40, 0.75)}
    assert summarize(records[:1], cap=40)["mean_tokens_wrong"] is None


def test_compare_is_relative_to_first(tmp_path):
    for name, acc, tok, lat in (("base", 0.9, 100.0, 200.0), ("short", 0.9, 40.0, 90.0)):
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"accuracy": acc, "accuracy_ci95": [0.8, 1.0], "mean_tokens": tok,
                                                    "latency": {"p50_ms": lat}}))
    rows = comparison_rows([str(tmp_path / "base"), str(tmp_path / "short")])
    assert rows[1]["tokens_change"] == pytest.approx(-0.6)
    assert rows[1]["latency_change"] == pytest.approx(-0.55)
    assert rows[1]["accuracy_rel"] == 1.0
    md = to_markdown(rows)
    assert "-60.0%" in md and "-55.0%" in md
    assert "| +0.600 |" in md  # AES: 60% shorter at equal accuracy


def test_aes_pinned_on_hand_numbers():
    from frugalthink.util.stats import aes

    assert aes(0.9, 100, 0.9, 100) == 0.0
    assert aes(0.9, 40, 0.9, 100) == pytest.approx(0.6)  # shorter, same accuracy: the length term alone
    assert aes(0.99, 40, 0.9, 100) == pytest.approx(0.6 + 3 * 0.1)  # +10% accuracy weighs 3
    assert aes(0.81, 40, 0.9, 100) == pytest.approx(0.6 - 5 * 0.1)  # -10% weighs 5
    assert aes(0.9, 150, 0.9, 100) == pytest.approx(-0.5)  # longer is negative
    assert aes(0.5, 10, 0.0, 100) is None  # no base accuracy to be relative to


def test_compare_adds_paired_tests_from_the_records(tmp_path):
    for name, correct_every, tokens in (("base", 1, 100), ("short", 4, 40)):
        d = tmp_path / name
        d.mkdir()
        rows = [rec(str(i), 0, i % correct_every == 0, tokens + i % 3) for i in range(60)]
        (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        s = summarize(rows)
        (d / "summary.json").write_text(json.dumps(s))
    rows = comparison_rows([str(tmp_path / "base"), str(tmp_path / "short")])
    # base right on all 60, short on 15 -> 45 discordant pairs, all one way
    assert rows[1]["pairs"] == 60 and rows[1]["accuracy_p"] == pytest.approx(2 * 0.5**45)
    assert rows[1]["tokens_diff"] == pytest.approx(-60) and rows[1]["tokens_p"] < 0.01
    assert "p (McNemar)" in to_markdown(rows) and "<0.001" in to_markdown(rows)
