"""Offline baselines' data, pure: from k self-generated samples per prompt, the shortest correct one (SFT target)
and the (shortest correct, longest correct) pair (DPO). Records are `frugalthink eval` records (problem_id,
completion, tokens, correct, truncated)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def _correct_by_problem(records: Iterable[dict]) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["correct"] and not r.get("truncated"):
            by[str(r["problem_id"])].append(r)
    return by


def shortest_correct(records: Iterable[dict]) -> dict[str, dict]:
    """problem id -> its shortest correct sample (ties: the lowest sample index). Problems with none are absent."""
    return {pid: min(rs, key=lambda r: (r["tokens"], r["sample"])) for pid, rs in _correct_by_problem(records).items()}


def preference_pairs(records: Iterable[dict], min_gap: int = 1) -> dict[str, tuple[dict, dict]]:
    """problem id -> (shortest correct, longest correct), kept only when they differ by ``min_gap`` tokens or more.

    Both sides are right, so the only thing the preference teaches is length (the paper's DPO baseline)."""
    out = {}
    for pid, rs in _correct_by_problem(records).items():
        short = min(rs, key=lambda r: (r["tokens"], r["sample"]))
        long = max(rs, key=lambda r: (r["tokens"], -r["sample"]))
        if long["tokens"] - short["tokens"] >= min_gap:
            out[pid] = (short, long)
    return out
