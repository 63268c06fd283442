"""Does a family show an accuracy-length trade-off? The criteria of docs/benchmark.md, from the per-sample records.

    frugalthink check runs/demo-tally [--seed N] [--json OUT]

Reads DIR/family.json (a demo or a sweep) and each member's records.jsonl, all evaluated on the same problems, and
prints, for the members of one training seed (``--seed``, default 0):
1. the correctness-only control: tokens of alpha = 0 vs base (paired bootstrap), target: cuts at most 15%;
2. neighbouring alphas > 0: mean tokens differ, paired bootstrap p < 0.01;
3. accuracy at the easiest and hardest level per member (Wilson 95% intervals; McNemar vs base at the hardest);
4. adaptivity: per level, tokens(alpha) / tokens(base) for every alpha, and whether it rises with the level.
Each line says PASS or FAIL; the numbers are printed with it, so a FAIL is read, not hidden. Printed beside them, not
judged: tokens / the fine trace per level (records' ``oracle_tokens``), which separates what a member cuts below the
fine trace (folded steps) from the base's own verbosity profile.
"""

from __future__ import annotations

import json
from pathlib import Path


def records(eval_dir) -> list[dict]:
    """An evaluation's per-sample records, read as `frugalthink eval` reads them (line separators inside
    completions are not line breaks)."""
    from frugalthink.util.jsonl import read_jsonl_tolerant

    return read_jsonl_tolerant(Path(eval_dir) / "records.jsonl")


def by_level(rs: list[dict]) -> dict:
    levels = sorted({r["level"] for r in rs})
    return {lv: [r for r in rs if r["level"] == lv] for lv in levels}


def spearman(values: list[float]) -> float:
    """Rank correlation of ``values`` with their position (ties get their mean rank)."""
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    mean = (n - 1) / 2
    cov = sum((r - mean) * (k - mean) for k, r in enumerate(ranks))
    var = (sum((r - mean) ** 2 for r in ranks) * sum((k - mean) ** 2 for k in range(n))) ** 0.5
    return cov / var if var else 0.0


def checks(fam_dir: Path, seed: int = 0) -> dict:
    from frugalthink.report.family import load_family
    from frugalthink.util.stats import mcnemar_exact, paired_bootstrap, paired_records, wilson_interval

    fam = load_family(fam_dir)
    base = records(fam["base"]["eval_dir"])
    members = sorted((m for m in fam["members"] if m.get("seed", 0) == seed), key=lambda m: m["alpha"])
    if not members:
        from frugalthink.util.errors import UserError

        raise UserError(f"{fam_dir}/family.json: no member trained with seed {seed}")
    recs = {m["alpha"]: records(m["eval_dir"]) for m in members}
    out: dict = {"members": [m["alpha"] for m in members], "checks": []}

    def check(name: str, ok: bool, detail: str) -> None:
        out["checks"].append({"check": name, "pass": bool(ok), "detail": detail})

    def tokens_test(a: list[dict], b: list[dict]) -> dict:
        pairs = paired_records(a, b)
        return paired_bootstrap([x["tokens"] for x, _ in pairs], [y["tokens"] for _, y in pairs])

    mean_base = sum(r["tokens"] for r in base) / len(base)
    if 0.0 in recs:
        t = tokens_test(base, recs[0.0])
        change = t["mean_diff"] / mean_base
        check("alpha = 0 cuts at most 15% of tokens", change >= -0.15,
              f"{change:+.1%} vs base (paired bootstrap p = {t['p']:.3g})")
    positive = [a for a in recs if a > 0]
    for a, b in zip(positive, positive[1:], strict=False):
        t = tokens_test(recs[a], recs[b])
        check(f"alpha {a:g} vs {b:g}: mean tokens differ (p < 0.01)", t["p"] < 0.01,
              f"{t['mean_diff']:+.1f} tokens, 95% CI [{t['ci95'][0]:+.1f}, {t['ci95'][1]:+.1f}], p = {t['p']:.3g}")
    base_lv = by_level(base)
    levels = sorted(base_lv)
    easy, hard = levels[0], levels[-1]

    def mean_tokens(rs: list[dict]) -> float:
        return sum(r["tokens"] for r in rs) / len(rs)

    refs = {"base": base_lv, **({"alpha0": by_level(recs[0.0])} if 0.0 in recs else {})}
    table = []
    for name, rs in [("base", base)] + [(f"alpha={a:g}", recs[a]) for a in recs]:
        lv = by_level(rs)
        row = {"model": name}
        for level in (easy, hard):
            n_ok, n = sum(r["correct"] for r in lv[level]), len(lv[level])
            row[f"acc_L{level}"] = [n_ok / n, *wilson_interval(n_ok, n)]
        if name != "base":
            for key, ref in refs.items():  # the base, and the alpha = 0 control when the family has one
                pairs = paired_records(ref[hard], lv[hard])
                row[f"mcnemar_hard_vs_{key}"] = mcnemar_exact([x["correct"] for x, _ in pairs],
                                                              [y["correct"] for _, y in pairs])
        row["tokens_ratio_by_level"] = {level: mean_tokens(lv[level]) / mean_tokens(base_lv[level]) for level in levels}
        if all(r.get("oracle_tokens") for r in rs):
            row["tokens_over_fine_by_level"] = {
                level: mean_tokens(lv[level]) / (sum(r["oracle_tokens"] for r in lv[level]) / len(lv[level]))
                for level in levels}
        table.append(row)
    out["table"] = table
    falls = [r for r in table[1:] if float(r["model"].split("=")[1]) > 0
             and r["mcnemar_hard_vs_base"]["a_only"] > r["mcnemar_hard_vs_base"]["b_only"]  # base right, member wrong
             and r["mcnemar_hard_vs_base"]["p"] < 0.05 and r[f"acc_L{easy}"][0] >= 0.95]
    check(f"from some alpha on, accuracy at level {hard} falls (McNemar p < 0.05 vs base) while level {easy} "
          "stays >= 95%", bool(falls), ", ".join(r["model"] for r in falls) or "no member")
    for row in table[1:]:
        ratios = list(row["tokens_ratio_by_level"].values())
        rho = spearman(ratios)
        row["spearman_level_ratio"] = rho
        if row["model"] == "alpha=0.2":
            check("alpha = 0.2 is adaptive: tokens / base rises with the level (hardest > easiest, Spearman >= 0.5)",
                  ratios[-1] > ratios[0] and rho >= 0.5,
                  " ".join(f"L{lv}:{r:.2f}" for lv, r in row["tokens_ratio_by_level"].items()) + f", rho = {rho:.2f}")
    return out


def run(args) -> int:
    """`frugalthink check DIR`: print the checks and the table; exit 1 when a check fails."""
    res = checks(Path(args.family_dir), args.seed)
    for c in res["checks"]:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['detail']}")
    levels = list(res["table"][0]["tokens_ratio_by_level"])
    hard = levels[-1]
    print("\nmodel        " + "  ".join(f"acc L{k}".rjust(7) for k in (levels[0], hard))
          + f"   L{hard} McNemar p vs base, vs alpha=0   tokens / base by level " + " ".join(f"L{lv}" for lv in levels))
    for row in res["table"]:
        accs = "  ".join(f"{row[f'acc_L{k}'][0]:7.3f}" for k in (levels[0], hard))
        tests = "  ".join(f"{row[key]['p']:8.3g}" if key in row else " " * 8
                          for key in ("mcnemar_hard_vs_base", "mcnemar_hard_vs_alpha0"))
        ratios = " ".join(f"{r:.2f}" for r in row["tokens_ratio_by_level"].values())
        print(f"{row['model']:<12} {accs}   {tests}" + " " * 16 + ratios)
    if all("tokens_over_fine_by_level" in row for row in res["table"]):
        print("\nmodel        tokens / fine trace by level " + " ".join(f"L{lv}" for lv in levels) + "   Spearman")
        for row in res["table"]:
            ratios = list(row["tokens_over_fine_by_level"].values())
            print(f"{row['model']:<12} {' '.join(f'{r:.2f}' for r in ratios)}   {spearman(ratios):+.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if all(c["pass"] for c in res["checks"]) else 1

