"""What a chain model writes, per level: checks ``(a+b=c)`` and hesitation phrases per problem, from eval records.

Usage: python dev/count_checks.py runs/demo-chain/base_eval runs/demo/alpha-0.2/eval ...   (docs/results/chain-family.md)
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

from frugalthink.tasks.chain import FILLERS
from frugalthink.util.jsonl import read_jsonl_tolerant

CHECK = re.compile(r"\(\d\+\d=\d\)")
# Longest first, so " hmm, let me re-check." counts once and not also as " hmm,".
FILLER = re.compile("|".join(re.escape(f) for f in sorted(FILLERS, key=len, reverse=True)))


def counts(records: list[dict]) -> dict[int, tuple[float, float]]:
    """level -> (checks per problem, hesitation phrases per problem)."""
    by_level: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        text = r["completion"]
        fillers = len(FILLER.findall(text))
        by_level[r["level"]].append((len(CHECK.findall(text)), fillers))
    return {lvl: (sum(c for c, _ in v) / len(v), sum(f for _, f in v) / len(v)) for lvl, v in sorted(by_level.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", help="evaluation directories (records.jsonl)")
    args = ap.parse_args()
    table = {d: counts(read_jsonl_tolerant(f"{d}/records.jsonl")) for d in args.dirs}
    levels = sorted({lvl for c in table.values() for lvl in c})
    print("| run | " + " | ".join(f"level {lvl}: checks / hesitations" for lvl in levels) + " |")
    print("| --- |" + " --- |" * len(levels))
    for d, c in table.items():
        cells = [f"{c[lvl][0]:.1f} / {c[lvl][1]:.1f}" if lvl in c else "-" for lvl in levels]
        print(f"| {d} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
