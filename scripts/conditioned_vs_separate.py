"""One conditioned model against the separately trained family, alpha by alpha, on the same problems.

    python scripts/conditioned_vs_separate.py runs/cond-chain runs/demo-chain [--json OUT]

COND is a `frugalthink sweep --conditioned` folder, SEPARATE a family folder (a demo or a sweep); both family.json.
For each alpha the conditioned model was evaluated at: its accuracy and mean tokens; where the family has a member
at that alpha, the member's, McNemar's exact test on accuracy and a paired bootstrap on tokens (conditioned minus
separate). For alphas not seen in training: whether the point lies between its neighbours' tokens. And whether the
conditioned model's tokens fall as alpha rises.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _records(eval_dir) -> list[dict]:
    """An evaluation's per-sample records, read as `frugalthink eval` reads them (line separators inside
    completions are not line breaks)."""
    from frugalthink.jsonl import read_jsonl_tolerant

    return read_jsonl_tolerant(Path(eval_dir) / "records.jsonl")


def compare(cond_dir: Path, sep_dir: Path) -> dict:
    from frugalthink.family import load_family
    from frugalthink.stats import mcnemar_exact, paired_bootstrap, paired_records

    cond, sep = load_family(cond_dir), load_family(sep_dir)
    separate = {m["alpha"]: m for m in sep["members"] if not m.get("seed")}
    rows = []
    for m in sorted(cond["members"], key=lambda m: m["alpha"]):
        rc = _records(m["eval_dir"])
        row = {"alpha": m["alpha"], "seen": m.get("seen_in_training", True), "accuracy": m["accuracy"],
               "tokens": m["mean_tokens"]}
        if m["alpha"] in separate:
            s = separate[m["alpha"]]
            pairs = paired_records(_records(s["eval_dir"]), rc)
            row["separate"] = {"accuracy": s["accuracy"], "tokens": s["mean_tokens"]}
            row["mcnemar"] = mcnemar_exact([a["correct"] for a, _ in pairs], [b["correct"] for _, b in pairs])
            row["tokens_diff"] = paired_bootstrap([a["tokens"] for a, _ in pairs], [b["tokens"] for _, b in pairs])
        rows.append(row)
    tokens = [r["tokens"] for r in rows]
    # "fall" means lower at the top alpha than at the bottom one and never higher in between; equal tiers do not fall
    out = {"rows": rows, "tokens_fall_with_alpha": tokens[-1] < tokens[0]
           and all(b <= a for a, b in zip(tokens, tokens[1:], strict=False))}
    for i, r in enumerate(rows):
        if not r["seen"] and 0 < i < len(rows) - 1:
            lo, hi = sorted((rows[i - 1]["tokens"], rows[i + 1]["tokens"]))
            r["between_neighbours"] = lo < hi and lo <= r["tokens"] <= hi  # strictly separated neighbours only
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cond_dir")
    ap.add_argument("separate_dir")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res = compare(Path(args.cond_dir), Path(args.separate_dir))
    print("| alpha | seen in training | conditioned acc. | conditioned tokens | separate acc. | separate tokens | "
          "McNemar p | tokens cond. - sep. [95% CI], p |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        sep = r.get("separate")
        if sep:
            t = r["tokens_diff"]
            extra = (f"{sep['accuracy']:.3f} | {sep['tokens']:.1f} | {r['mcnemar']['p']:.3g} | "
                     f"{t['mean_diff']:+.1f} [{t['ci95'][0]:+.1f}, {t['ci95'][1]:+.1f}], {t['p']:.3g} |")
        else:
            between = r.get("between_neighbours")
            extra = "- | - | - | " + ("" if between is None else
                                      f"between distinct neighbours: {'yes' if between else 'NO'}") + " |"
        print(f"| {r['alpha']:g} | {'yes' if r['seen'] else 'no'} | {r['accuracy']:.3f} | {r['tokens']:.1f} | {extra}")
    print(f"\ntokens fall as alpha rises: {'yes' if res['tokens_fall_with_alpha'] else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
