"""One conditioned model against the separately trained family, alpha by alpha, on the same problems.

    frugalthink check-conditioned runs/cond-chain runs/demo-chain [--json OUT] [--plot OUT.png]

COND is a `frugalthink sweep --conditioned` folder, SEPARATE a family folder (a demo or a sweep); both family.json.
For each alpha the conditioned model was evaluated at: its accuracy and mean tokens; where the family has a member
at that alpha, the member's, McNemar's exact test on accuracy and a paired bootstrap on tokens (conditioned minus
separate). For alphas not seen in training: whether the point lies between its neighbours' tokens. And whether the
conditioned model's tokens fall as alpha rises. Two tiers count as apart only when their paired difference is both
significant and at least ``--min-gap`` tokens per completion (default 1): on 1,550 problems a 0.1-token difference
can be significant without being a tier. A trained alpha's verdict is "as good or better" when its point is
neither less accurate (McNemar, 5%) nor longer (the bootstrap CI of the token difference above 0) than the member's.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path


@functools.cache
def _records(eval_dir: str) -> list[dict]:
    """An evaluation's per-sample records, read as `frugalthink eval` reads them (line separators inside
    completions are not line breaks); each file read once however many comparisons use it (callers do not modify
    the list)."""
    from frugalthink.util.jsonl import read_jsonl_tolerant

    return read_jsonl_tolerant(Path(eval_dir) / "records.jsonl")


def _tokens_diff(a: list[dict], b: list[dict]) -> dict:
    """Paired bootstrap of tokens(b) - tokens(a) over the (problem, sample) items two evaluations share."""
    from frugalthink.util.stats import paired_bootstrap, paired_records

    pairs = paired_records(a, b)
    return paired_bootstrap([x["tokens"] for x, _ in pairs], [y["tokens"] for _, y in pairs])


def _moves(shift: dict, min_gap: float = 0.0) -> int:
    """+1 / -1 when the paired 95% CI lies above / below 0 and the mean difference is at least ``min_gap``, else 0."""
    lo, hi = shift["ci95"]
    if abs(shift["mean_diff"]) < min_gap:
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def _against(this: dict, other: dict) -> dict:
    """The single-pair comparison of one family member's evaluation (``this``) with another's of the same alpha
    (``other``): McNemar on accuracy and the paired bootstrap on tokens (this - other) over the items both hold."""
    from frugalthink.util.stats import mcnemar_exact, paired_records

    r_this, r_other = _records(this["eval_dir"]), _records(other["eval_dir"])
    pairs = paired_records(r_other, r_this)
    row = {"separate": {"accuracy": other["accuracy"], "tokens": other["mean_tokens"]},
           "mcnemar": mcnemar_exact([x["correct"] for x, _ in pairs], [y["correct"] for _, y in pairs]),
           "tokens_diff": _tokens_diff(r_other, r_this)}
    row["verdict"] = verdict({"accuracy": this["accuracy"], **row})
    return row


def compare(cond_dir: Path, sep_dir: Path, seed: int = 0, min_gap: float = 1.0) -> dict:
    from frugalthink.report.family import load_family

    cond, sep = load_family(cond_dir), load_family(sep_dir)
    separate = {m["alpha"]: m for m in sep["members"] if m.get("seed", 0) == seed}
    if not separate:
        raise SystemExit(f"{sep_dir}: no member with training seed {seed}")
    members = sorted(cond["members"], key=lambda m: m["alpha"])
    recs = [_records(m["eval_dir"]) for m in members]
    rows = []
    for m in members:
        row = {"alpha": m["alpha"], "seen": m.get("seen_in_training", True), "accuracy": m["accuracy"],
               "tokens": m["mean_tokens"]}
        if m["alpha"] in separate:
            row.update(_against(m, separate[m["alpha"]]))
        rows.append(row)
    # "fall": never longer at the next alpha, and shorter at the top alpha than at the bottom one (paired on the same
    # problems; longer / shorter: significant and by at least min_gap tokens); equal tiers do not fall
    steps = [_tokens_diff(a, b) for a, b in zip(recs, recs[1:], strict=False)]
    for r, step in zip(rows, steps, strict=False):
        r["tokens_to_next_alpha"] = step
    out = {"rows": rows, "tokens_fall_with_alpha": len(rows) > 1
           and _moves(_tokens_diff(recs[0], recs[-1]), min_gap) < 0 and all(_moves(st, min_gap) <= 0 for st in steps)}
    for i, r in enumerate(rows):
        if not r["seen"] and 0 < i < len(rows) - 1:
            lo, hi = sorted((rows[i - 1]["tokens"], rows[i + 1]["tokens"]))
            # between neighbours that are apart (significant and by at least min_gap)
            distinct = _moves(_tokens_diff(recs[i - 1], recs[i + 1]), min_gap) != 0
            r["between_neighbours"] = distinct and lo <= r["tokens"] <= hi
    return out


def verdict(row: dict, level: float = 0.05) -> str:
    """"as good or better" when the conditioned point is neither less accurate nor longer than the member at
    ``level`` (McNemar on accuracy, the paired bootstrap's CI on tokens); otherwise what it loses (and gains)."""
    acc_p, (lo, hi) = row["mcnemar"]["p"], row["tokens_diff"]["ci95"]
    sep = row["separate"]
    return _verdict_text(less_accurate=acc_p < level and row["accuracy"] < sep["accuracy"], more_tokens=lo > 0,
                         more_accurate=acc_p < level and row["accuracy"] > sep["accuracy"], fewer_tokens=hi < 0)


def _verdict_text(less_accurate: bool, more_tokens: bool, more_accurate: bool, fewer_tokens: bool) -> str:
    worse = [w for w, bad in (("less accurate", less_accurate), ("more tokens", more_tokens)) if bad]
    better = [b for b, good in (("more accurate", more_accurate), ("fewer tokens", fewer_tokens)) if good]
    if not worse:
        return "as good or better" + (f" ({', '.join(better)})" if better else "")
    return ", ".join(worse) + (f"; {', '.join(better)}" if better else "")


def pooled(cond_dirs: list[Path], sep_dirs: list[Path]) -> dict:
    """The verdict over training seeds: every conditioned folder is one seed of the conditioned model, every
    member of the separate folders one seed of its alpha's member. Per trained alpha, the difference in accuracy
    and in tokens (conditioned minus separate, each method's mean over its seeds) on the items every run shares, with
    `seeded_paired_bootstrap`'s interval, which resamples the seeds as well as the problems. "as good or better":
    neither interval says worse (accuracy's entirely below 0, tokens' entirely above 0)."""
    from frugalthink.report.family import load_family
    from frugalthink.util.stats import seeded_paired_bootstrap

    def runs(dirs, keep):
        by_alpha: dict[float, list] = {}
        for d in dirs:
            for m in load_family(d)["members"]:
                if keep(m):
                    by_alpha.setdefault(m["alpha"], []).append((m.get("seed", 0), _records(m["eval_dir"])))
        return by_alpha

    cond = runs(cond_dirs, lambda m: m.get("seen_in_training", True))
    sep = runs(sep_dirs, lambda m: True)
    rows = []
    for alpha in sorted(set(cond) & set(sep)):
        c, s = [r for _, r in cond[alpha]], [r for _, r in sep[alpha]]
        keys = set.intersection(*({(str(x["problem_id"]), x["sample"]) for x in r} for r in c + s))
        if not keys:
            raise SystemExit(f"alpha {alpha:g}: the runs share no (problem, sample)")
        keys = sorted(keys)
        c_cols, s_cols = [_columns(r, keys) for r in c], [_columns(r, keys) for r in s]
        acc = seeded_paired_bootstrap([x["correct"] for x in s_cols], [x["correct"] for x in c_cols])
        tok = seeded_paired_bootstrap([x["tokens"] for x in s_cols], [x["tokens"] for x in c_cols])
        rows.append({
            "alpha": alpha, "items": len(keys),
            "conditioned": [_point(x) for x in c_cols],
            "separate": [{"seed": seed, **_point(x)} for (seed, _), x in zip(sep[alpha], s_cols, strict=True)],
            "accuracy_diff": acc, "tokens_diff": tok,
            "verdict": _verdict_text(less_accurate=acc["ci95"][1] < 0, more_tokens=tok["ci95"][0] > 0,
                                     more_accurate=acc["ci95"][0] > 0, fewer_tokens=tok["ci95"][1] < 0)})
    return {"rows": rows}


def seed_against_seed(sep_dirs: list[Path]) -> list[dict]:
    """The single-pair verdict applied to the separate method against itself: for every ordered pair of training
    seeds of the separate members, how many alphas' member of one seed is "as good or better" than the other's."""
    from frugalthink.report.family import load_family

    members: dict[int, dict[float, dict]] = {}
    for d in sep_dirs:
        for m in load_family(d)["members"]:
            members.setdefault(m.get("seed", 0), {})[m["alpha"]] = m
    out = []
    for a in sorted(members):
        for b in sorted(members):
            shared = sorted(set(members[a]) & set(members[b])) if a != b else []
            # seed a's member in the conditioned model's place
            verdicts = {alpha: _against(members[a][alpha], members[b][alpha])["verdict"] for alpha in shared}
            if verdicts:
                out.append({"seed": a, "against_seed": b, "verdicts": verdicts})
    return out


def _columns(records: list[dict], keys: list[tuple]) -> dict[str, list[float]]:
    """One evaluation's correctness and tokens on ``keys`` ((problem, sample) pairs), in that order."""
    index = {(str(x["problem_id"]), x["sample"]): x for x in records}
    return {f: [float(index[k][f]) for k in keys] for f in ("correct", "tokens")}


def _point(columns: dict[str, list[float]]) -> dict[str, float]:
    return {"accuracy": statistics.fmean(columns["correct"]), "tokens": statistics.fmean(columns["tokens"])}


def plot(cond_dirs: list[Path], sep_dirs: list[Path], out: Path, title: str = "", seed: int | None = None) -> None:
    """Accuracy against mean tokens: each training seed of the separate members joined in alpha order (only
    ``seed``'s when given), each conditioned folder's points (unseen alphas hollow), and the base; alphas written
    beside the first curve of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalthink.report.family import load_family

    fams = [load_family(d) for d in sep_dirs]
    seeds: dict[int, list] = {}
    for fam in fams:
        for m in fam["members"]:
            if seed is None or m.get("seed", 0) == seed:
                seeds.setdefault(m.get("seed", 0), []).append(m)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    base = fams[0].get("base") or {}
    if "mean_tokens" in base:
        ax.scatter([base["mean_tokens"]], [base["accuracy"]], marker="s", color="black", label="base", zorder=3)
    curves = [("tab:blue", "o", sorted(ms, key=lambda m: m["alpha"]), (4, -11)) for _, ms in sorted(seeds.items())]
    curves += [("tab:orange", "D", sorted(load_family(d)["members"], key=lambda m: m["alpha"]), (4, 4))
               for d in cond_dirs]
    named = set()
    for color, marker, ms, offset in curves:
        ax.plot([m["mean_tokens"] for m in ms], [m["accuracy"] for m in ms], "-", color=color, alpha=0.6)
        for m in ms:
            seen = m.get("seen_in_training", True)
            ax.scatter([m["mean_tokens"]], [m["accuracy"]], marker=marker, zorder=3, color=color if seen else "white",
                       edgecolors=color)
            if color not in named:
                ax.annotate(f"{m['alpha']:g}", (m["mean_tokens"], m["accuracy"]), textcoords="offset points",
                            xytext=offset, color=color, fontsize=8)
        named.add(color)
    ax.scatter([], [], marker="o", color="tab:blue", label=f"separate models, one per alpha ({len(seeds)} seed(s))")
    ax.scatter([], [], marker="D", color="tab:orange", label=f"one conditioned model, per alpha ({len(cond_dirs)} "
               "seed(s))")
    ax.scatter([], [], marker="D", color="white", edgecolors="tab:orange", label="... at an alpha not trained on")
    ax.set_xlabel("mean completion tokens")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "one conditioned model vs one model per alpha")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def run(args) -> int:
    """`frugalthink check-conditioned COND SEPARATE`: print the tables; write --json / --plot when asked."""
    cond_dirs = [Path(args.cond_dir), *map(Path, args.more_conditioned)]
    sep_dirs = [Path(args.separate_dir), *map(Path, args.more_separate)]
    many = len(cond_dirs) + len(sep_dirs) > 2
    res = compare(cond_dirs[0], sep_dirs[0], args.separate_seed, args.min_gap)
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
    if many:
        res["over_seeds"] = pooled(cond_dirs, sep_dirs)
        print(f"\nover training seeds ({len(cond_dirs)} conditioned folders; separate: {', '.join(map(str, sep_dirs))})"
              "; differences are conditioned - separate, 95% CI resampling seeds and problems:\n")
        print("| alpha | conditioned, per seed | separate, per seed | accuracy diff [95% CI] | tokens diff [95% CI] | "
              "verdict |")
        print("|---|---|---|---|---|---|")
        for r in res["over_seeds"]["rows"]:
            a, t = r["accuracy_diff"], r["tokens_diff"]
            print(f"| {r['alpha']:g} | " + ", ".join(f"{x['accuracy']:.3f} / {x['tokens']:.1f}" for x in r["conditioned"])
                  + " | " + ", ".join(f"{x['accuracy']:.3f} / {x['tokens']:.1f}" for x in r["separate"])
                  + f" | {a['mean_diff']:+.4f} [{a['ci95'][0]:+.4f}, {a['ci95'][1]:+.4f}] | {t['mean_diff']:+.1f} "
                  f"[{t['ci95'][0]:+.1f}, {t['ci95'][1]:+.1f}] | {r['verdict']} |")
        good = sum(r["verdict"].startswith("as good") for r in res["over_seeds"]["rows"])
        print(f"as good as the separate members or better, over seeds: {good} of {len(res['over_seeds']['rows'])} "
              "alphas")
        res["seed_against_seed"] = seed_against_seed(sep_dirs)
        if res["seed_against_seed"]:
            print("\nthe single-pair verdict between the separate members' own seeds (seed vs seed):")
            for x in res["seed_against_seed"]:
                ok = sum(v.startswith("as good") for v in x["verdicts"].values())
                print(f"  seed {x['seed']} vs seed {x['against_seed']}: {ok} of {len(x['verdicts'])} as good or better"
                      f" ({'; '.join(f'{a:g}: {v}' for a, v in x['verdicts'].items())})")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.plot:
        plot(cond_dirs, sep_dirs, Path(args.plot), args.title, None if many else args.separate_seed)
        print(f"figure: {args.plot}")
    return 0

