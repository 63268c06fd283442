"""Evaluation arithmetic: per-sample records -> summary. Pure Python (no torch), so any table can be recomputed.

A record is one (problem, sample): ``problem_id, sample, level, completion, tokens, truncated, correct, reason,
extracted, oracle_tokens, batch_ms``. Latency records (``latency.jsonl``) are single requests run alone:
``problem_id, sample, tokens, latency_ms``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from frugalthink.util.stats import wilson_interval


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, ``q`` in [0, 100]; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _level_key(level) -> str:
    return "all" if level is None else str(level)


BUDGET_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def accuracy_at_budgets(records: Sequence[dict], cap: int, fractions: Sequence[float] = BUDGET_FRACTIONS) -> dict:
    """Accuracy when every sample is cut at ``fraction * cap`` tokens and graded again: a sample that had not
    finished by then has no final answer, which the grader scores wrong (truncated), so it counts as correct iff it
    was correct and used at most that many tokens. The same samples at every budget, as the length-reduction
    papers report it ("accuracy under token budgets")."""
    out = {}
    for f in fractions:
        budget = max(1, int(f * cap))
        out[f"{round(100 * f)}%"] = {"tokens": budget, "accuracy": sum(
            bool(r["correct"]) and r["tokens"] <= budget for r in records) / len(records)}
    return out


def summarize(records: Sequence[dict], latency: Sequence[dict] = (), seed: int = 0, cap: int | None = None) -> dict:
    """Summary of an evaluation, computed from its records only.

    accuracy = mean of ``correct`` over all records (pass@1 averaged over samples); its 95% interval is Wilson's
    over problems (each problem weighs once, with its mean accuracy over its samples), which does not collapse at
    0% or 100%. Tokens are completion tokens incl. EOS; mean tokens of correct and of wrong samples apart; with the
    generation cap ``cap``, accuracy at 25/50/75/100% of it (`accuracy_at_budgets`).
    """
    if not records:
        return {"n_records": 0}
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_problem[str(r["problem_id"])].append(r)
    per_problem_acc = [sum(x["correct"] for x in rs) / len(rs) for rs in by_problem.values()]
    tokens = [r["tokens"] for r in records]
    lo, hi = wilson_interval(sum(per_problem_acc), len(per_problem_acc))
    summary = {
        "n_records": len(records),
        "n_problems": len(by_problem),
        "accuracy": sum(r["correct"] for r in records) / len(records),
        "accuracy_ci95": [lo, hi],
        "mean_tokens": statistics.fmean(tokens),
        "median_tokens": percentile(tokens, 50),
        "p90_tokens": percentile(tokens, 90),
        "truncation_rate": sum(bool(r["truncated"]) for r in records) / len(records),
        "reasons": dict(sorted(_count(r["reason"] for r in records).items())),
        "mean_tokens_correct": _mean_or_none([r["tokens"] for r in records if r["correct"]]),
        "mean_tokens_wrong": _mean_or_none([r["tokens"] for r in records if not r["correct"]]),
    }
    if cap:
        summary["accuracy_at_budget"] = accuracy_at_budgets(records, cap)
    oracle = [r["oracle_tokens"] for r in records if r.get("oracle_tokens") is not None]
    if len(oracle) == len(records):
        summary["oracle_mean_tokens"] = statistics.fmean(oracle)
        summary["tokens_over_oracle"] = summary["mean_tokens"] / summary["oracle_mean_tokens"]
    levels: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        levels[_level_key(r.get("level"))].append(r)
    if len(levels) > 1 or "all" not in levels:
        summary["by_level"] = {k: _level_summary(v) for k, v in sorted(levels.items(), key=lambda kv: _sortable(kv[0]))}
    batch_ms = {(r.get("batch"), r.get("batch_ms")) for r in records if r.get("batch_ms") is not None}
    if batch_ms:
        makespan_s = sum(ms for _, ms in batch_ms) / 1000
        summary["throughput"] = {
            "makespan_s": makespan_s,
            "generated_tokens": sum(tokens),
            "tokens_per_s": sum(tokens) / makespan_s if makespan_s > 0 else None,
        }
    if latency:
        lat = [x["latency_ms"] for x in latency]
        summary["latency"] = {
            "requests": len(lat),
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
            "mean_ms": statistics.fmean(lat),
            "mean_tokens": statistics.fmean(x["tokens"] for x in latency),
            "ms_per_token": sum(lat) / max(1, sum(x["tokens"] for x in latency)),
        }
    return summary


def _level_summary(rs: list[dict]) -> dict:
    out = {
        "n": len(rs),
        "accuracy": sum(r["correct"] for r in rs) / len(rs),
        "mean_tokens": statistics.fmean(r["tokens"] for r in rs),
    }
    oracle = [r["oracle_tokens"] for r in rs if r.get("oracle_tokens") is not None]
    if len(oracle) == len(rs):
        out["oracle_mean_tokens"] = statistics.fmean(oracle)
        out["tokens_over_oracle"] = out["mean_tokens"] / out["oracle_mean_tokens"]
    return out


def _mean_or_none(xs: list) -> float | None:
    return statistics.fmean(xs) if xs else None


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _sortable(key: str):
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def format_summary(summary: dict, title: str = "") -> str:
    """A plain-text table of a summary, for the console."""
    lines = [title] if title else []
    lo, hi = summary["accuracy_ci95"]
    lines.append(f"accuracy {summary['accuracy']:.3f} [95% CI {lo:.3f}-{hi:.3f}] over {summary['n_records']} samples "
                 f"/ {summary['n_problems']} problems")
    tok = f"tokens mean {summary['mean_tokens']:.1f} median {summary['median_tokens']:.0f} p90 {summary['p90_tokens']:.0f}"
    if "oracle_mean_tokens" in summary:
        tok += f" (oracle {summary['oracle_mean_tokens']:.1f}, x{summary['tokens_over_oracle']:.2f})"
    lines.append(tok + f"; truncated {100 * summary['truncation_rate']:.1f}%")
    if summary.get("mean_tokens_correct") is not None and summary.get("mean_tokens_wrong") is not None:
        lines.append(f"tokens of correct answers {summary['mean_tokens_correct']:.1f}, of wrong ones "
                     f"{summary['mean_tokens_wrong']:.1f}")
    if "accuracy_at_budget" in summary:
        lines.append("accuracy cut at " + ", ".join(f"{k} ({v['tokens']} tokens) {v['accuracy']:.3f}"
                                                    for k, v in summary["accuracy_at_budget"].items()))
    if "latency" in summary:
        lat = summary["latency"]
        lines.append(f"latency per request p50 {lat['p50_ms']:.1f} ms p95 {lat['p95_ms']:.1f} ms "
                     f"({lat['requests']} requests, {lat['ms_per_token']:.2f} ms/token)")
    if "throughput" in summary:
        th = summary["throughput"]
        lines.append(f"batched throughput {th['tokens_per_s']:.0f} tokens/s, makespan {th['makespan_s']:.1f}s")
    if "by_level" in summary:
        lines.append("level      n  accuracy  tokens  oracle  x oracle")
        for lvl, s in summary["by_level"].items():
            oracle = f"{s['oracle_mean_tokens']:6.1f}  {s['tokens_over_oracle']:7.2f}" if "oracle_mean_tokens" in s else ""
            lines.append(f"{lvl:>5} {s['n']:6d}  {s['accuracy']:8.3f}  {s['mean_tokens']:6.1f}  {oracle}")
    return "\n".join(lines)
