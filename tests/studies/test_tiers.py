"""The budget-tier study's verdict (`frugalthink.studies.tiers.verdict`) on evaluation records written by hand."""

import json
import random

import pytest

from frugalthink.studies import tiers as T

N = 200  # problems
LENGTHS = {str(i): {"length": 100.0} for i in range(N)}  # L(x) = 100 everywhere: budgets 60 and 40


def _write(folder, tokens, accuracy, seed):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"problem_id": str(i), "sample": 0, "tokens": tokens(i, rng), "correct": rng.random() < accuracy}
            for i in range(N)]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _study(tmp_path, one_low_accuracy=0.97, one_low_tokens=30):
    lengths = tmp_path / "base_lengths_test" / "base_lengths.json"
    lengths.parent.mkdir(parents=True)
    lengths.write_text(json.dumps({"problems": LENGTHS}))
    _write(tmp_path / "base_eval-test", lambda i, r: 100 + r.randint(-5, 5), 0.99, 0)
    for s in (0, 1):
        sd = tmp_path / f"s{s}"
        one = {1.0: (95, 0.99), 0.6: (50, 0.98), 0.4: (one_low_tokens, one_low_accuracy), 0.5: (40, 0.98)}
        for t, (tok, acc) in one.items():
            _write(sd / "tiers-test" / f"eval-{t:g}", lambda i, r, tok=tok: tok + r.randint(-3, 3), acc, 10 + s)
        for t, (tok, acc) in {1.0: (97, 0.99), 0.6: (52, 0.98), 0.4: (31, 0.97)}.items():
            _write(sd / f"only-{t:g}" / "eval-test", lambda i, r, tok=tok: tok + r.randint(-3, 3), acc, 20 + s)
        for t, (tok, acc) in {0.5: (70, 0.80), 0.75: (45, 0.9)}.items():
            _write(sd / f"dial-{t:g}" / "eval-test", lambda i, r, tok=tok: tok + r.randint(-3, 3), acc, 30 + s)
    return T.verdict(tmp_path, [1.0, 0.6, 0.4], [0, 1], [0.5], [0.5, 0.75], lengths, "test")


def test_a_model_that_meets_every_check(tmp_path):
    v = _study(tmp_path)
    top, mid, low = v["tiers"]
    assert v["problems"] == N and v["high_tier_keeps_base_accuracy"]
    assert mid["falls_15pct"] and low["falls_15pct"] and mid["shorter_than_above"] == pytest.approx(1 - 50 / 95, abs=0.01)
    assert all(r["keeps_budget"] for r in v["tiers"]) and low["over_budget"] == 0.0  # 30 +- 3 under a budget of 40
    assert low["overshoot"] == {"over_by_10pct": 0.0, "median_tokens_over": None}
    assert all(r["as_accurate_as_alone"] and r["tokens_within_alone_plus_10pct"] for r in v["tiers"])
    assert v["unseen"][0]["between_neighbours"]  # 40 tokens between 50 and 30
    assert not any(r["dominated_by_dial"] for r in v["tiers"])  # every dial point is less accurate or longer
    text = T.format_verdict(v)
    assert "| 0.4 | " in text and "**no**" not in text


def test_what_fails_is_reported(tmp_path):
    # the lowest tier: over its budget of 40 tokens (45 +- 3), no longer 15% under the 0.6 tier, and less accurate
    # than the model trained on it alone (0.80 vs 0.97)
    v = _study(tmp_path, one_low_accuracy=0.80, one_low_tokens=45)
    low = v["tiers"][2]
    assert low["over_budget"] == 1.0 and not low["keeps_budget"]
    # how far over, pooled over both seeds: every completion is over its budget of 40 tokens
    tokens = [json.loads(x)["tokens"] for s in (0, 1)
              for x in (tmp_path / f"s{s}" / "tiers-test" / "eval-0.4" / "records.jsonl").read_text().splitlines()]
    assert low["overshoot"] == {"over_by_10pct": pytest.approx(sum(n > 44 for n in tokens) / len(tokens)),
                                "median_tokens_over": sorted(n - 40 for n in tokens)[len(tokens) // 2]}
    assert 0 < low["overshoot"]["over_by_10pct"] < 1
    assert not low["falls_15pct"] and not low["as_accurate_as_alone"] and not low["tokens_within_alone_plus_10pct"]
    assert not v["unseen"][0]["between_neighbours"]  # 40 tokens are no longer between 50 and 45
    assert "**no**" in T.format_verdict(v)
    # the dial at 0.75 (45 tokens, 0.9) now beats the low tier: as many tokens, significantly more accurate
    assert v["tiers"][2]["dominated_by_dial"] == [0.75] and "**yes**" in T.format_verdict(v)


def test_over_budget_counts_only_tiers_with_a_budget():
    recs = {"a": {"tokens": 500}, "b": {"tokens": 41}}
    assert T.over_budget(recs, 1.0, {"a": {"length": 100.0}, "b": {"length": 100.0}}) == 0.0
    assert T.over_budget(recs, 0.4, {"a": {"length": 100.0}, "b": {"length": 100.0}}) == 1.0


def test_a_budget_tier_model_is_a_family_for_report_and_pick(tmp_path):
    """`frugalthink tier-family`: a budget-tier model evaluated at each tier (named by its efforts) and at an unseen
    ratio, written as a family that `report` and `pick` read; `pick` says how to ask for the tier it chose."""
    import subprocess
    import sys

    from tiny_runs import save_tiny_model

    model = tmp_path / "m"
    save_tiny_model(model)
    cfg = {"model": str(model), "task": "tally", "task_options": {"config": {"min_level": 2, "max_level": 3}},
           "max_completion_length": 12, "budget_tiers": [1.0, 0.6, 0.4], "budget_unit": "ratio",
           "budget_efforts": {"high": 1.0, "medium": 0.6, "low": 0.4}, "seed": 0}
    (model / "frugalthink_run.json").write_text(json.dumps({"config": cfg}))
    (model / "train_summary.json").write_text(json.dumps({"rollouts": 1}))
    fam = T.tier_family(model, tmp_path / "fam", "validation", ratios=[0.5], console=False, limit=4)
    assert [(m["tier"], m["effort"], m["seen_in_training"], m["ask"]) for m in fam["members"]] == [
        (1.0, "high", True, "--effort high"), (0.6, "medium", True, "--effort medium"),
        (0.5, None, False, "--budget-ratio 0.5"), (0.4, "low", True, "--effort low")]
    recs = [json.loads(x) for x in (tmp_path / "fam" / "eval-0.4" / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 4
    config = json.loads((tmp_path / "fam" / "eval-0.4" / "eval_config.json").read_text())["config"]
    assert config["ratio"] == 0.4 and config["split"] == "validation"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "frugalthink.cli", *args], capture_output=True, text=True,
                              timeout=300)

    res = cli("report", str(tmp_path / "fam"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| tier 0.6 (medium) |" in res.stdout and "| ratio 0.5 (unseen) |" in res.stdout
    fam_path = tmp_path / "fam" / "family.json"  # a random model writes 12 tokens everywhere: make the base long
    fam["base"]["mean_tokens"] = 100.0
    fam_path.write_text(json.dumps(fam))
    res = cli("pick", str(tmp_path / "fam"), "--max-tokens", "50")
    assert res.returncode == 0 and "ask with: frugalthink eval --model" in res.stdout, res.stdout + res.stderr
    with pytest.raises(Exception, match="not a budget-tier model"):
        T.tier_family(tmp_path / "fam", tmp_path / "x", console=False)


def test_the_study_trains_the_recipes_warm_start_once_and_starts_every_run_from_it(tmp_path, monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from frugalthink.rl import budgets
    from frugalthink.rl.train import load_recipe

    calls = []

    def fake_warm_start(recipe, folder, console=True):
        calls.append(folder)
        return replace(recipe, model=str(folder), base_lengths=str(folder / "pool"), warm_start=None)

    seen = {}
    monkeypatch.setattr(budgets, "warm_start", fake_warm_start)
    monkeypatch.setattr(T, "run_study", lambda recipe, out, seeds, split, unseen, dial, samples, base: seen.update(
        recipe=recipe, out=out, seeds=seeds, base=base) or {})
    monkeypatch.setattr(T, "format_verdict", lambda result: "")
    args = SimpleNamespace(recipe="tiny/tally/tiers", set=[], seeds="0,1", split="validation", unseen="0.5",
                           dial="0.5", samples=1, base=None, warm_start=None, out=str(tmp_path / "study"))
    assert T.run(args) == 0
    assert calls == [tmp_path / "study" / "warm"]  # once, for every seed and baseline
    r = seen["recipe"]
    assert r.model == str(tmp_path / "study" / "warm") and r.base_lengths == str(tmp_path / "study" / "warm" / "pool")
    assert seen["base"] == load_recipe("tiny/tally/tiers", None, []).model  # L(x) and the dial's far end: the base
    assert seen["seeds"] == [0, 1]
