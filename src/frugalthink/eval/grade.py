"""`frugalthink grade`: re-grade saved generations with the same code path as rewards and evaluation."""

from __future__ import annotations

from pathlib import Path

from frugalthink.tasks.grading import grade_many
from frugalthink.tasks.math_benchmarks import gold_value
from frugalthink.tasks.prompts import opens_thinking
from frugalthink.util.errors import UserError
from frugalthink.util.jsonl import iter_jsonl, require, write_jsonl


def _check_out(path: str) -> None:
    """Fail before grading, not after: the output must be a file path in an existing folder."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"--out {path}: is a directory; give a file name, e.g. {out / 'graded.jsonl'}")
    if not out.parent.is_dir():
        raise UserError(f"--out {path}: folder {out.parent} does not exist")


def run(args) -> int:
    _check_out(args.out)
    rows, golds, completions, truncated, opened = [], [], [], [], []
    for lineno, row in iter_jsonl(args.inp):
        golds.append(gold_value(require(row, "answer", args.inp, lineno), f"{args.inp}:{lineno}: field 'answer'"))
        completion = require(row, "completion", args.inp, lineno)
        if not isinstance(completion, str):
            raise UserError(f"{args.inp}:{lineno}: field 'completion' must be a string")
        completions.append(completion)
        truncated.append(bool(row.get("truncated", False)))
        # A saved prompt that left <think> open means the completion must close it (`prompts.opens_thinking`).
        opened.append(isinstance(row.get("prompt"), str) and opens_thinking(row["prompt"]))
        rows.append(row)
    results = grade_many(completions, golds, truncated, kind=args.kind, timeout_s=args.timeout, thinking_open=opened,
                         number_fallback=args.number_fallback)
    write_jsonl(args.out, ({**row, **r.to_dict()} for row, r in zip(rows, results, strict=True)))
    n_ok = sum(r.correct for r in results)
    reasons = {}
    for r in results:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    print(f"graded {len(results)} rows: {n_ok} correct ({100 * n_ok / max(1, len(results)):.1f}%) [{detail}] -> {args.out}")
    return 0
