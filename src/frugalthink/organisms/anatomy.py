"""What a tally model writes, per level: accuracy, tokens, how coarse its steps are, how many checks and hesitations.

    python -m frugalthink.organisms.anatomy runs/demo-tally/base_eval runs/demo-tally/alpha-0.2/eval

Each argument is an evaluation folder (records.jsonl) of `frugalthink eval --task tally`. Columns: accuracy, mean
tokens, digits per written step (1.0 = every addition its own step), share of traces with a step of 3 or more
digits, checks and hesitations per trace, and accuracy of the traces with / without a coarse step.
"""

from __future__ import annotations

import sys
from pathlib import Path


def anatomy(records: list[dict]) -> list[dict]:
    import re

    from frugalthink.tasks.chain import FILLERS
    from frugalthink.tasks.tally import trace_folds

    hesitation = re.compile("|".join(re.escape(f) for f in sorted(FILLERS, key=len, reverse=True)))
    rows = []
    for level in sorted({r["level"] for r in records}):
        rs = [r for r in records if r["level"] == level]
        folds = [trace_folds(r["completion"]) for r in rs]
        think = [r["completion"].split("</think>")[0] for r in rs]
        coarse = [any(f > 1 for f in fs) for fs in folds]
        steps = sum(len(fs) for fs in folds)
        fine_ok = [r["correct"] for r, c in zip(rs, coarse, strict=True) if not c]
        coarse_ok = [r["correct"] for r, c in zip(rs, coarse, strict=True) if c]
        rows.append({
            "level": level, "n": len(rs), "accuracy": sum(r["correct"] for r in rs) / len(rs),
            "tokens": sum(r["tokens"] for r in rs) / len(rs),
            "digits_per_step": sum(sum(fs) for fs in folds) / max(1, steps),
            "fold3_share": sum(any(f >= 3 for f in fs) for fs in folds) / len(rs),
            "checks": sum(t.count("(") for t in think) / len(rs),
            "hesitations": sum(len(hesitation.findall(t)) for t in think) / len(rs),
            "acc_fine": sum(fine_ok) / len(fine_ok) if fine_ok else None,
            "acc_coarse": sum(coarse_ok) / len(coarse_ok) if coarse_ok else None,
            "coarse_share": len(coarse_ok) / len(rs),
        })
    return rows


def _fmt(x) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def main(argv: list[str]) -> int:
    from frugalthink.util.jsonl import read_jsonl_tolerant

    for folder in argv:
        records = read_jsonl_tolerant(Path(folder) / "records.jsonl")
        print(f"== {folder}")
        print("level   n  acc    tokens  digits/step  coarse  fold>=3  checks  hesit.  acc fine  acc coarse")
        for r in anatomy(records):
            print(f"{r['level']:>5} {r['n']:>3}  {r['accuracy']:.3f}  {r['tokens']:6.1f}  {r['digits_per_step']:>10.2f}  "
                  f"{r['coarse_share']:6.2f}  {r['fold3_share']:7.2f}  {r['checks']:6.2f}  {r['hesitations']:6.2f}  "
                  f"{_fmt(r['acc_fine']):>8}  {_fmt(r['acc_coarse']):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
