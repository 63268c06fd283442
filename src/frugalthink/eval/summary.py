"""Evaluation arithmetic: per-sample records -> summary. Pure Python (no torch), so any table can be recomputed.

A record is one (problem, sample): ``problem_id, sample, level, completion, tokens, truncated, correct, reason,
extracted, oracle_tokens, batch_ms``. Latency records (``latency.jsonl``) are single requests run alone:
``problem_id, sample, tokens, latency_ms``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from frugalthink.util.stats import clustered_mean_interval, wilson_interval


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


def accuracy_at_token_budgets(records: Sequence[dict], budgets: Sequence[int], cap: int | None = None) -> dict:
    """Accuracy under absolute token budgets, the truncation reading: a sample counts as right at budget ``B`` iff
    it was right and used at most ``B`` tokens, i.e. the accuracy these samples would have had if generation had
    stopped at ``B`` (a sample cut before its answer has none, and is scored wrong). It is read off the records, not
    re-generated: a model told or forced to stop at ``B`` (``--budget``) may do better than its cut samples. Keys are
    the budgets as strings; a budget above the generation cap ``cap`` is left out (what the model would have done
    past the cap was not observed).

    >>> rs = [{"correct": True, "tokens": 1000}, {"correct": True, "tokens": 3000}, {"correct": False, "tokens": 500}]
    >>> accuracy_at_token_budgets(rs, [2048, 4096, 8192], cap=4096)   # 1/3 right within 2048, 2/3 within 4096
    {'2048': 0.3333333333333333, '4096': 0.6666666666666666}
    """
    return {str(b): sum(bool(r["correct"]) and r["tokens"] <= b for r in records) / len(records)
            for b in sorted(set(budgets)) if cap is None or b <= cap}


def summarize(records: Sequence[dict], latency: Sequence[dict] = (), seed: int = 0, cap: int | None = None,
              budgets: Sequence[int] | None = None) -> dict:
    """Summary of an evaluation, computed from its records only.

    accuracy = mean of ``correct`` over all records (pass@1 averaged over samples); its 95% interval is Wilson's
    over problems (each problem weighs once, with its mean accuracy over its samples), which does not collapse at
    0% or 100%. Tokens are completion tokens incl. EOS; mean tokens of correct and of wrong samples apart; with the
    generation cap ``cap``, accuracy at 25/50/75/100% of it (`accuracy_at_budgets`).

    pass1 = the mean over problems of (right samples / samples of that problem): pass@1 averaged over the samples
    of each problem, as the papers report it; equal to ``accuracy`` when every problem has the same number of
    samples. pass1_ci95 is its interval clustered by problem (`frugalthink.util.stats.clustered_mean_interval`:
    Student's t over the per-problem means, None for one problem), which counts a problem once however many samples
    it has. With ``budgets`` (absolute token counts), ``accuracy_at_tokens`` = the accuracy at each budget up to
    ``cap``, read off the records (`accuracy_at_token_budgets`, the truncation reading, not re-generation).

    Hand-computed: problem a right in 2 of 4 samples, problem b in 4 of 4 -> pass1 = (0.5 + 1) / 2 = 0.75; the
    spread of the two problem means is sd = 0.35355, standard error 0.25, t(0.975, 1) = 12.706, so the interval is
    clipped to [0, 1]; two of the six right samples used over 100 tokens:

    >>> rs = [{"problem_id": p, "sample": i, "correct": c, "tokens": t, "truncated": False, "reason": "ok"}
    ...       for p, i, c, t in [("a", 0, 1, 50), ("a", 1, 0, 80), ("a", 2, 1, 150), ("a", 3, 0, 90),
    ...                          ("b", 0, 1, 60), ("b", 1, 1, 70), ("b", 2, 1, 120), ("b", 3, 1, 40)]]
    >>> s = summarize(rs, cap=200, budgets=[100, 200, 400])
    >>> s["pass1"], s["pass1_ci95"], s["accuracy_at_tokens"]
    (0.75, [0.0, 1.0], {'100': 0.5, '200': 0.75})
    """
    if not records:
        return {"n_records": 0}
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_problem[str(r["problem_id"])].append(r)
    per_problem_acc = [sum(x["correct"] for x in rs) / len(rs) for rs in by_problem.values()]
    tokens = [r["tokens"] for r in records]
    lo, hi = wilson_interval(sum(per_problem_acc), len(per_problem_acc))
    pass1, pass1_ci = clustered_mean_interval(per_problem_acc)
    summary = {
        "n_records": len(records),
        "n_problems": len(by_problem),
        "accuracy": sum(r["correct"] for r in records) / len(records),
        "accuracy_ci95": [lo, hi],
        "pass1": pass1,
        "pass1_ci95": list(pass1_ci) if pass1_ci is not None else None,
        "samples_per_problem": _samples_per_problem(by_problem),
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
    if budgets:
        summary["accuracy_at_tokens"] = accuracy_at_token_budgets(records, budgets, cap)
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


def _samples_per_problem(by_problem: dict) -> int | list[int]:
    """The number of samples of each problem: one number when all have the same, else [fewest, most]."""
    counts = {len(rs) for rs in by_problem.values()}
    return counts.pop() if len(counts) == 1 else [min(counts), max(counts)]


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
    if "settings" in summary:
        st = summary["settings"]
        lines.append(f"taken at T {st.get('temperature')} top_p {st.get('top_p', 1.0)}, {st.get('samples')} samples "
                     f"per problem, at most {st.get('max_new_tokens')} new tokens, backend {st.get('backend')}, "
                     f"seed {st.get('seed')}")
    if summary.get("pass1_ci95") is not None:
        plo, phi = summary["pass1_ci95"]
        lines.append(f"pass@1 {summary['pass1']:.3f} [95% CI clustered by problem {plo:.3f}-{phi:.3f}] (mean over "
                     "problems of each one's share of right samples)")
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
    if summary.get("accuracy_at_tokens"):
        lines.append("accuracy within " + ", ".join(f"{k} tokens {v:.3f}" for k, v in summary["accuracy_at_tokens"].items())
                     + " (samples cut at the budget, not re-generated)")
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
