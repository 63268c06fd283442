"""`pick` on a hand-made family, `report` on a small fake run directory, and the quick demo end to end."""

import json
import subprocess
import sys

import pytest

from frugalthink.cli import main
from frugalthink.report.family import FIGURES, family_table, write_report
from frugalthink.studies.family import pick
from frugalthink.util.errors import UserError


def member(alpha, acc, tokens, lat, model="m"):
    return {"alpha": alpha, "model": f"{model}-{alpha}", "accuracy": acc, "accuracy_ci95": [acc - 0.02, acc + 0.01],
            "mean_tokens": tokens, "median_tokens": tokens, "latency_p50_ms": lat, "latency_p95_ms": lat * 1.5,
            "oracle_mean_tokens": 30.0,
            "by_level": {"2": {"n": 5, "accuracy": acc, "mean_tokens": tokens * 0.5, "oracle_mean_tokens": 18.0},
                         "3": {"n": 5, "accuracy": acc, "mean_tokens": tokens * 1.5, "oracle_mean_tokens": 42.0}}}


FAMILY = {
    "task": "chain",
    "base": {k: v for k, v in member(None, 0.99, 120.0, 200.0).items() if k != "alpha"} | {"model": "base"},
    "members": [member(0.1, 0.985, 80.0, 140.0), member(0.2, 0.975, 55.0, 100.0), member(0.4, 0.90, 35.0, 70.0)],
}


def test_pick_cheapest_meeting_each_constraint():
    assert pick(FAMILY, min_accuracy=0.98)["alpha"] == 0.1
    assert pick(FAMILY, min_accuracy=0.97)["alpha"] == 0.2
    assert pick(FAMILY, min_accuracy=0.995) is None
    assert pick(FAMILY, max_tokens=60)["alpha"] == 0.4  # cheapest under the budget
    assert pick(FAMILY, max_tokens=130)["alpha"] == 0.4
    assert pick(FAMILY, max_latency_ms=150)["alpha"] == 0.4
    assert pick(FAMILY, max_tokens=10) is None
    assert pick(FAMILY, min_accuracy=0.99)["name"] == "base"
    with pytest.raises(UserError, match="constraint"):
        pick(FAMILY)


def test_pick_cli_and_report_on_fake_run_dir(tmp_path, capsys):
    (tmp_path / "family.json").write_text(json.dumps(FAMILY))
    for m in FAMILY["members"]:
        (tmp_path / m["model"]).mkdir()
    FAMILY_with_logs = json.loads(json.dumps(FAMILY))
    for m in FAMILY_with_logs["members"]:
        m["model"] = str(tmp_path / m["model"])
        log = [{"step": s, "reward": 0.8, "accuracy": 0.9, "tokens_mean": 100 - s} for s in range(1, 5)]
        (tmp_path / m["model"] / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (tmp_path / "family.json").write_text(json.dumps(FAMILY_with_logs))
    assert main(["pick", str(tmp_path), "--min-accuracy", "0.97"]) == 0
    assert "alpha=0.2" in capsys.readouterr().out
    assert main(["pick", str(tmp_path), "--min-accuracy", "0.999"]) == 1
    assert "no member" in capsys.readouterr().out
    html = write_report(tmp_path)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000
    page = html.read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "alpha=0.4" in (tmp_path / "family_table.md").read_text()


def test_family_table_relative_numbers():
    table = family_table(FAMILY)
    assert "| alpha=0.2 | 0.975" in table
    assert "-54.2%" in table  # 55 vs 120 tokens
    assert "-50.0%" in table  # 100 vs 200 ms


def test_bad_family_file(tmp_path, capsys):
    (tmp_path / "family.json").write_text("{oops")
    assert main(["pick", str(tmp_path), "--max-tokens", "5"]) == 2
    assert "family.json:1: malformed JSON" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["chain", "tally"])
def test_quick_demo_end_to_end(tmp_path, task):
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "frugalthink.cli", "demo", "--quick", "--task", task, "--out", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task
    base_cfg = json.loads((out / "base" / "frugalthink_base.json").read_text())["config"]
    assert base_cfg["task"] == task
    for key in ("accuracy", "mean_tokens", "oracle_mean_tokens", "latency_p50_ms"):
        assert key in summary["base"]
    assert [m["alpha"] for m in summary["members"]] == [0.0, 0.2]
    for m in summary["members"]:
        for key in ("alpha", "accuracy", "mean_tokens", "latency_p50_ms", "by_level"):
            assert key in m
        for lvl in m["by_level"].values():
            assert {"accuracy", "mean_tokens", "oracle_mean_tokens"} <= set(lvl)
    assert (out / "report.html").exists()
    assert "report:" in res.stdout and "summary:" in res.stdout
    # Values a broken pipeline would get wrong: each number is recomputed from the per-sample records.
    for entry, eval_dir in [(summary["base"], out / "base_eval")] + [
            (m, out / f"alpha-{m['alpha']:g}" / "eval") for m in summary["members"]]:
        rows = [json.loads(x) for x in (eval_dir / "records.jsonl").read_text().splitlines()]
        for lvl, v in entry["by_level"].items():
            at = [r for r in rows if str(r["level"]) == lvl]
            assert v["accuracy"] == pytest.approx(sum(r["correct"] for r in at) / len(at))
        assert entry["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
        assert entry["mean_tokens"] == pytest.approx(sum(r["tokens"] for r in rows) / len(rows))
        assert all(r["tokens"] <= 48 and (r["reason"] == "correct") == r["correct"] for r in rows)
    for m in summary["members"]:
        run = json.loads((out / f"alpha-{m['alpha']:g}" / "frugalthink_run.json").read_text())["config"]
        assert run["alpha"] == m["alpha"] and run["model"] == str(out / "base") and run["task"] == task
        log = [json.loads(x) for x in (out / f"alpha-{m['alpha']:g}" / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == [1, 2, 3, 4]  # 2 rollouts x 2 updates
    # (The quick base is near random, so its RL runs get no reward signal; that RL moves the weights and the clip
    # acts is tested in tests/rl/test_rl.py.)
    # a re-run reuses every finished part
    again = subprocess.run([sys.executable, "-m", "frugalthink.cli", "demo", "--quick", "--task", task, "--out",
                            str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert "SFT base" not in again.stderr
    # ... and a demo folder of one task is not reused as the base of the other
    other = "chain" if task == "tally" else "tally"
    mixed = subprocess.run([sys.executable, "-m", "frugalthink.cli", "demo", "--quick", "--task", other, "--out",
                            str(out)], capture_output=True, text=True, timeout=300)
    assert mixed.returncode == 2 and f"task={task!r}" in mixed.stderr, mixed.stderr[-2000:]


def test_sweep_with_an_r1_recipe_evaluates_on_the_papers_sets():
    from argparse import Namespace
    from pathlib import Path

    from frugalthink.rl.train import load_recipe
    from frugalthink.studies.sweep import sweep_eval_settings

    root = Path(__file__).resolve().parents[2]
    rec = load_recipe(str(root / "recipes/r1-distill-qwen-1.5b/rl.yaml"))
    args = Namespace(task=None, samples=None, temperature=None, max_new_tokens=None, limit=None, latency_requests=4)
    s = sweep_eval_settings(rec, args)
    assert (s.task, s.samples, s.temperature, s.max_new_tokens, s.top_p) == ("gsm8k", 1, 0.6, 32768, 0.95)
    assert s.task_options == {"message": "{instruction} Question: {question}"}
    s = sweep_eval_settings(rec, Namespace(**{**vars(args), "task": "aime24"}))
    assert (s.task, s.samples, s.top_p) == ("aime24", 32, 0.95)  # the field's convention (docs/evaluation.md)
    tiny = load_recipe(str(root / "recipes/tiny/rl.yaml"))
    s = sweep_eval_settings(tiny, args)
    assert (s.task, s.temperature, s.task_options) == ("chain", 0.6, tiny.task_options or None)
    # an embedded recipe's members are evaluated with the cap they were trained with (tally's is not chain's)
    tally = load_recipe(str(root / "recipes/tiny/tally/rl.yaml"))
    assert tally.max_completion_length != tiny.max_completion_length
    for recipe in (tiny, tally):
        assert sweep_eval_settings(recipe, args).max_new_tokens == recipe.max_completion_length
    assert sweep_eval_settings(tally, Namespace(**{**vars(args), "max_new_tokens": 99})).max_new_tokens == 99
    # and `frugalthink eval` of an embedded task defaults to the cap its RL recipe trains with
    from frugalthink.tasks import DEFAULT_MAX_NEW_TOKENS

    assert {r.task: r.max_completion_length for r in (tiny, tally)} == DEFAULT_MAX_NEW_TOKENS
