"""One conditioned model against the separately trained family, alpha by alpha, on the same problems.

    python scripts/conditioned_vs_separate.py runs/cond-chain runs/demo-chain [--json OUT] [--plot OUT.png]

COND is a `frugalthink sweep --conditioned` folder, SEPARATE a family folder (a demo or a sweep); both family.json.
For each alpha the conditioned model was evaluated at: its accuracy and mean tokens; where the family has a member
at that alpha, the member's, McNemar's exact test on accuracy and a paired bootstrap on tokens (conditioned minus
separate). For alphas not seen in training: whether the point lies between its neighbours' tokens. And whether the
conditioned model's tokens fall as alpha rises. A trained alpha's verdict is "as good or better" when its point is
neither less accurate (McNemar, 5%) nor longer (the bootstrap CI of the token difference above 0) than the member's.
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


def _tokens_diff(a: list[dict], b: list[dict]) -> dict:
    """Paired bootstrap of tokens(b) - tokens(a) over the (problem, sample) items two evaluations share."""
    from frugalthink.stats import paired_bootstrap, paired_records

    pairs = paired_records(a, b)
    return paired_bootstrap([x["tokens"] for x, _ in pairs], [y["tokens"] for _, y in pairs])


def _moves(shift: dict) -> int:
    """+1 / -1 when the paired 95% CI lies above / below 0, else 0."""
    lo, hi = shift["ci95"]
    return 1 if lo > 0 else -1 if hi < 0 else 0


def compare(cond_dir: Path, sep_dir: Path, seed: int = 0) -> dict:
    from frugalthink.family import load_family
    from frugalthink.stats import mcnemar_exact, paired_records

    cond, sep = load_family(cond_dir), load_family(sep_dir)
    separate = {m["alpha"]: m for m in sep["members"] if m.get("seed", 0) == seed}
    if not separate:
        raise SystemExit(f"{sep_dir}: no member with training seed {seed}")
    members = sorted(cond["members"], key=lambda m: m["alpha"])
    recs = [_records(m["eval_dir"]) for m in members]
    rows = []
    for m, rc in zip(members, recs, strict=True):
        row = {"alpha": m["alpha"], "seen": m.get("seen_in_training", True), "accuracy": m["accuracy"],
               "tokens": m["mean_tokens"]}
        if m["alpha"] in separate:
            s = separate[m["alpha"]]
            rs = _records(s["eval_dir"])
            pairs = paired_records(rs, rc)
            row["separate"] = {"accuracy": s["accuracy"], "tokens": s["mean_tokens"]}
            row["mcnemar"] = mcnemar_exact([a["correct"] for a, _ in pairs], [b["correct"] for _, b in pairs])
            row["tokens_diff"] = _tokens_diff(rs, rc)
            row["verdict"] = verdict(row)
        rows.append(row)
    # "fall": never significantly longer at the next alpha, and significantly shorter at the top alpha than at the
    # bottom one (paired on the same problems); equal tiers do not fall
    steps = [_tokens_diff(a, b) for a, b in zip(recs, recs[1:], strict=False)]
    for r, step in zip(rows, steps, strict=False):
        r["tokens_to_next_alpha"] = step
    out = {"rows": rows, "tokens_fall_with_alpha": len(rows) > 1 and _moves(_tokens_diff(recs[0], recs[-1])) < 0
           and all(_moves(st) <= 0 for st in steps)}
    for i, r in enumerate(rows):
        if not r["seen"] and 0 < i < len(rows) - 1:
            lo, hi = sorted((rows[i - 1]["tokens"], rows[i + 1]["tokens"]))
            # between neighbours whose own difference is significant
            distinct = _moves(_tokens_diff(recs[i - 1], recs[i + 1])) != 0
            r["between_neighbours"] = distinct and lo <= r["tokens"] <= hi
    return out


def verdict(row: dict, level: float = 0.05) -> str:
    """"as good or better" when the conditioned point is neither less accurate nor longer than the member at
    ``level`` (McNemar on accuracy, the paired bootstrap's CI on tokens); otherwise what it loses (and gains)."""
    acc_p, (lo, hi) = row["mcnemar"]["p"], row["tokens_diff"]["ci95"]
    sep = row["separate"]
    worse = [w for w, bad in (("less accurate", acc_p < level and row["accuracy"] < sep["accuracy"]),
                              ("more tokens", lo > 0)) if bad]
    better = [b for b, good in (("more accurate", acc_p < level and row["accuracy"] > sep["accuracy"]),
                                ("fewer tokens", hi < 0)) if good]
    if not worse:
        return "as good or better" + (f" ({', '.join(better)})" if better else "")
    return ", ".join(worse) + (f"; {', '.join(better)}" if better else "")


def plot(res: dict, sep_dir: Path, out: Path, title: str = "", seed: int = 0) -> None:
    """Accuracy against mean tokens: the separate members joined in alpha order, the conditioned model's points
    (unseen alphas hollow), and the base."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalthink.family import load_family

    sep = load_family(sep_dir)
    members = sorted((m for m in sep["members"] if m.get("seed", 0) == seed), key=lambda m: m["alpha"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    base = sep.get("base") or {}
    if "mean_tokens" in base:
        ax.scatter([base["mean_tokens"]], [base["accuracy"]], marker="s", color="black", label="base", zorder=3)
    ax.plot([m["mean_tokens"] for m in members], [m["accuracy"] for m in members], "o-", color="tab:blue",
            label="separate models, one per alpha")
    for m in members:
        ax.annotate(f"{m['alpha']:g}", (m["mean_tokens"], m["accuracy"]), textcoords="offset points", xytext=(4, -11),
                    color="tab:blue", fontsize=8)
    rows = res["rows"]
    ax.plot([r["tokens"] for r in rows], [r["accuracy"] for r in rows], "-", color="tab:orange", alpha=0.6)
    for r in rows:
        ax.scatter([r["tokens"]], [r["accuracy"]], marker="D", zorder=3, color="tab:orange" if r["seen"] else "white",
                   edgecolors="tab:orange")
        ax.annotate(f"{r['alpha']:g}", (r["tokens"], r["accuracy"]), textcoords="offset points", xytext=(4, 4),
                    color="tab:orange", fontsize=8)
    ax.scatter([], [], marker="D", color="tab:orange", label="one conditioned model, per alpha")
    ax.scatter([], [], marker="D", color="white", edgecolors="tab:orange", label="... at an alpha not trained on")
    ax.set_xlabel("mean completion tokens")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "one conditioned model vs one model per alpha")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cond_dir")
    ap.add_argument("separate_dir")
    ap.add_argument("--json")
    ap.add_argument("--plot", help="write the accuracy-tokens figure here (PNG)")
    ap.add_argument("--title", default="")
    ap.add_argument("--separate-seed", type=int, default=0, help="the family's members of this training seed")
    args = ap.parse_args(argv)
    res = compare(Path(args.cond_dir), Path(args.separate_dir), args.separate_seed)
    print("| alpha | seen in training | conditioned acc. | conditioned tokens | separate acc. | separate tokens | "
          "McNemar p | tokens cond. - sep. [95% CI], p | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        sep = r.get("separate")
        if sep:
            t = r["tokens_diff"]
            extra = (f"{sep['accuracy']:.3f} | {sep['tokens']:.1f} | {r['mcnemar']['p']:.3g} | "
                     f"{t['mean_diff']:+.1f} [{t['ci95'][0]:+.1f}, {t['ci95'][1]:+.1f}], {t['p']:.3g} | "
                     f"{r['verdict']} |")
        else:
            between = r.get("between_neighbours")
            extra = "- | - | - | - | " + ("" if between is None else
                                          f"between distinct neighbours: {'yes' if between else 'NO'}") + " |"
        print(f"| {r['alpha']:g} | {'yes' if r['seen'] else 'no'} | {r['accuracy']:.3f} | {r['tokens']:.1f} | {extra}")
    print(f"\ntokens fall as alpha rises: {'yes' if res['tokens_fall_with_alpha'] else 'NO'}")
    seen = [r for r in res["rows"] if "verdict" in r]
    good = sum(r["verdict"].startswith("as good") for r in seen)
    print(f"as good as the separate member or better: {good} of {len(seen)} alphas")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.plot:
        plot(res, Path(args.separate_dir), Path(args.plot), args.title, args.separate_seed)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
