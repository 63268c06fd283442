"""The budget-tier study: one model for every tier against a model per tier and the interpolation dial.

``frugalthink tiers --recipe tiny/tally/tiers --seeds 0,1,2 --out DIR``
(resumable: every step skips what is done):

0. With a warm start (the recipe's ``warm_start``, or ``--warm-start``): the base fine-tuned on its own correct
   samples bucketed into the tiers, once (``DIR/warm``, `frugalthink.rl.budgets.warm_start`); every run of the study
   starts from it, and its pool of base samples is L(x).

1. L(x) of the training problems, measured once on the base and shared by every run (``DIR/base_lengths``), and
   L(x) of the evaluation split, measured the same way (``DIR/base_lengths_<split>``): a tier's budget there is
   ratio x L(x), which is how "each tier keeps to its budget" is checked.
2. The base evaluated on the split (``DIR/base_eval-<split>``).
3. Per seed: the one model (``DIR/s<seed>/tiers``), evaluated at every tier and at the unseen ratios as a family
   (`tier_family`, ``DIR/s<seed>/tiers-<split>/family.json``: `frugalthink report` and `pick` read it), and one model
   per tier trained on that tier alone with the same rollouts in total (each gets rollouts / number of tiers;
   ``DIR/s<seed>/only-<tier>``), evaluated at its tier.
4. The dial: the base merged with the most frugal single-tier model at ``--dial`` weights (`frugalthink merge`, no
   training), evaluated at that model's tier.
5. The verdict over the seeds (`verdict`), in ``DIR/tiers-<split>.json``, ``.md`` and ``.png``.

Evaluations are named by split, so one folder holds the validation run that chose the
settings and the test run that reports them, the trained models shared.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

from frugalthink.eval.evaluate import EvalSettings, evaluate
from frugalthink.util.errors import UserError

FALL = 0.15  # each tier at least this much shorter than the one above
OVER = 0.05  # at most this share of a tier's completions over its budget
SLACK = 0.10  # a tier may spend this much more than the model trained on that tier alone
LEVEL = 0.05


def _eval(model: str | Path, recipe, split: str, out: Path, samples: int, ratio: float | None = None,
          temperature: float | None = None, console: bool = True) -> dict:
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    settings = EvalSettings(model=str(model), task=recipe.task, split=split, samples=samples,
                            temperature=0.6 if temperature is None else temperature,
                            max_new_tokens=recipe.max_completion_length, latency_requests=0,
                            task_options=recipe.task_options or None, ratio=ratio)
    return evaluate(settings, out, quiet=not console)


def _lengths(recipe, split: str, limit: int | None, out: Path, console: bool) -> Path:
    """L(x) of ``split`` (its first ``limit`` problems): the base at the training temperature, as training measures
    it (`frugalthink.rl.budgets.measure_base_lengths`)."""
    from frugalthink.rl.budgets import LENGTHS_FILE, measure_base_lengths
    from frugalthink.tasks import get_task

    if (out / LENGTHS_FILE).exists():
        return out / LENGTHS_FILE
    problems = get_task(recipe.task, **recipe.task_options).load(split)
    problems = problems[:limit] if limit else problems
    out.mkdir(parents=True, exist_ok=True)
    measure_base_lengths(replace(recipe, train_split=split, base_lengths=None), problems, out, quiet=not console)
    return out / LENGTHS_FILE


def tier_name(tier: float) -> str:
    return f"{tier:g}"


def tier_family(model: str | Path, out: str | Path, split: str = "test", samples: int = 1,
                ratios: list[float] = (), base_eval: str | Path | None = None, console: bool = True,
                limit: int | None = None) -> dict:
    """A budget-tier model as a family (``frugalthink tier-family``): the model evaluated at each trained tier (named
    by its efforts) and at ``ratios`` it never trained on, and its base (``base_eval``, or evaluated into
    ``out/base_eval``), written to ``out/family.json`` for `frugalthink report` and `frugalthink pick`. Each member
    says how to ask for it (``--effort NAME`` or ``--budget-ratio R``)."""
    from frugalthink.studies.family import _member_record, metrics_of
    from frugalthink.tasks.conditioning import budget_tiers, run_config

    found = budget_tiers(model)
    if found is None:
        raise UserError(f"{model}: not a budget-tier model (its recipe has no 'budget_tiers')")
    trained, unit, efforts = found
    if ratios and unit != "ratio":
        raise UserError("--ratios: the model's tiers are token budgets (budget_unit tokens), not ratios")
    cfg = run_config(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cap = int(cfg.get("max_completion_length") or cfg["max_new_tokens"])  # an RL run's, or its warm start's
    settings = EvalSettings(model=str(model), task=cfg["task"], split=split, samples=samples, temperature=0.6,
                            max_new_tokens=cap, latency_requests=0, limit=limit,
                            task_options=cfg.get("task_options") or None)
    base_dir = Path(base_eval) if base_eval else out / "base_eval"
    base_summary = (json.loads((base_dir / "summary.json").read_text()) if (base_dir / "summary.json").exists()
                    else evaluate(replace(settings, model=cfg["model"]), base_dir, quiet=not console))
    names = {v: k for k, v in efforts.items()}
    members = []
    for tier in sorted(set(trained) | set(ratios), reverse=True):
        eval_dir = out / f"eval-{tier_name(tier)}"
        if unit == "ratio":
            control = {"ratio": tier}
        else:
            control = {"length_target": None if tier >= cap else int(tier)}
        summary = (json.loads((eval_dir / "summary.json").read_text()) if (eval_dir / "summary.json").exists()
                   else evaluate(replace(settings, **control), eval_dir, quiet=not console))
        ask = f"--effort {names[tier]}" if tier in names else f"--budget-ratio {tier:g}"
        members.append({**_member_record(None, cfg.get("seed", 0), Path(model), eval_dir, summary), "tier": tier,
                        "effort": names.get(tier), "seen_in_training": tier in trained, "ask": ask})
    family = {"task": cfg["task"], "tiered": True, "eval_settings": {"split": split, "samples": samples},
              "recipe": cfg, "base": {"model": cfg["model"], "eval_dir": str(base_dir), **metrics_of(base_summary)},
              "members": members}
    (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family


def run_tier_family(args) -> int:
    from frugalthink.report.family import family_table

    fam = tier_family(args.model, args.out, args.split, args.samples, _floats(args.ratios, "--ratios")
                      if args.ratios else [], args.base_eval, limit=args.limit)
    print(family_table(fam))
    print(f"family: {Path(args.out) / 'family.json'} (frugalthink report / pick read it)")
    return 0


def run_study(recipe, out: Path, seeds: list[int], split: str, unseen: list[float], dial: list[float],
              samples: int = 1, console: bool = True, base: str | None = None) -> dict:
    """The study (module docstring). ``base``: the base model when the recipe's model is not it (a warm start,
    `frugalthink shortest --method tiers`): L(x), the base's evaluation and the dial's far end are the base's; the
    recipe's ``base_lengths`` then names the training problems' L(x) (the warm start's pool)."""
    from frugalthink.generation.merge import merge
    from frugalthink.rl.train import train

    if not recipe.budget_tiers or recipe.budget_unit != "ratio":
        raise UserError("tiers: the recipe must train budget tiers on ratios (budget_tiers, budget_unit: ratio)")
    tiers = sorted(recipe.budget_tiers, reverse=True)
    if recipe.rollouts % len(tiers):
        raise UserError(f"tiers: rollouts ({recipe.rollouts}) must split evenly over the {len(tiers)} single-tier models")
    out.mkdir(parents=True, exist_ok=True)
    base = base or recipe.model
    if base != recipe.model and not recipe.base_lengths:
        raise UserError("--base: the recipe's model is not the base, so L(x) of the training problems must come "
                        "from the base: set base_lengths (e.g. the warm start's pool)")
    of_base = replace(recipe, model=base)
    train_lengths = (Path(recipe.base_lengths) if recipe.base_lengths
                     else _lengths(of_base, recipe.train_split, recipe.num_prompts, out / "base_lengths", console))
    test_lengths = _lengths(of_base, split, None, out / f"base_lengths_{split}", console)
    _eval(base, recipe, split, out / f"base_eval-{split}", samples, console=console)
    low = tiers[-1]
    for seed in seeds:
        sdir = out / f"s{seed}"
        one = replace(recipe, seed=seed, base_lengths=str(train_lengths))
        one.validate()
        train(one, sdir / "tiers", resume=True, console=console)
        tier_family(sdir / "tiers", sdir / f"tiers-{split}", split, samples, unseen, out / f"base_eval-{split}",
                    console=console)
        for tier in tiers:
            alone = replace(one, budget_tiers=[tier], budget_efforts={}, rollouts=recipe.rollouts // len(tiers))
            alone.validate()
            train(alone, sdir / f"only-{tier_name(tier)}", resume=True, console=console)
            _eval(sdir / f"only-{tier_name(tier)}", recipe, split, sdir / f"only-{tier_name(tier)}" / f"eval-{split}",
                  samples, ratio=tier, console=console)
        for t in dial:
            point = sdir / f"dial-{t:g}"
            if not (point / "config.json").exists():
                merge(base, sdir / f"only-{tier_name(low)}", t, point)
            _eval(point, recipe, split, point / f"eval-{split}", samples, ratio=low, console=console)
    result = verdict(out, tiers, seeds, unseen, dial, test_lengths, split)
    (out / f"tiers-{split}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"tiers-{split}.md").write_text(format_verdict(result) + "\n")
    plot(result, out / f"tiers-{split}.png")
    return result


# ------------------------------------------------------------------------------------------------------ verdict
def _records(folder: Path) -> dict[str, dict]:
    """An evaluation's records by problem (its first sample)."""
    from frugalthink.util.jsonl import read_jsonl_tolerant

    return {str(r["problem_id"]): r for r in read_jsonl_tolerant(folder / "records.jsonl") if r["sample"] == 0}


def _budgets(records: dict[str, dict], ratio: float, lengths: dict[str, dict]) -> list[tuple[int, int]]:
    """(tokens, budget ratio x L(x)) of each completion (`frugalthink.rl.budgets.budget`)."""
    from frugalthink.rl.budgets import budget

    return [(int(r["tokens"]), budget(ratio, lengths[pid]["length"], "ratio", 10**9)) for pid, r in records.items()]


def over_budget(records: dict[str, dict], ratio: float, lengths: dict[str, dict]) -> float:
    """The share of completions longer than their budget ratio x L(x); 0 for the top tier.

    >>> over_budget({"a": {"tokens": 31}, "b": {"tokens": 30}}, 0.5, {"a": {"length": 60.0}, "b": {"length": 60.0}})
    0.5
    """
    from frugalthink.rl.budgets import is_top

    if is_top(ratio, "ratio", 0):
        return 0.0
    over = [n > b for n, b in _budgets(records, ratio, lengths)]
    return sum(over) / max(1, len(over))


def overshoot(runs: list[dict[str, dict]], ratio: float, lengths: dict[str, dict]) -> dict:
    """How far the completions over budget go, pooled over ``runs`` (seeds): the share more than 10% over their
    budget, and the median overshoot in tokens of those over it (None when none is; the top tier has no budget).

    >>> overshoot([{"a": {"tokens": 34}, "b": {"tokens": 31}, "c": {"tokens": 20}}], 0.5, dict.fromkeys("abc", {"length": 60.0}))
    {'over_by_10pct': 0.3333333333333333, 'median_tokens_over': 2.5}
    """
    from frugalthink.rl.budgets import is_top

    if is_top(ratio, "ratio", 0):
        return {"over_by_10pct": 0.0, "median_tokens_over": None}
    pairs = [p for run in runs for p in _budgets(run, ratio, lengths)]
    excess = [n - b for n, b in pairs if n > b]
    return {"over_by_10pct": sum(n > 1.1 * b for n, b in pairs) / max(1, len(pairs)),
            "median_tokens_over": statistics.median(excess) if excess else None}


def _columns(runs: list[dict[str, dict]], keys: list[str], field: str) -> list[list[float]]:
    return [[float(run[k][field]) for k in keys] for run in runs]


def _point(runs: list[dict[str, dict]], keys: list[str]) -> dict:
    acc = [statistics.fmean(float(run[k]["correct"]) for k in keys) for run in runs]
    tok = [statistics.fmean(float(run[k]["tokens"]) for k in keys) for run in runs]
    return {"accuracy": statistics.fmean(acc), "tokens": statistics.fmean(tok), "accuracy_by_seed": acc,
            "tokens_by_seed": tok}


def verdict(out: Path, tiers: list[float], seeds: list[int], unseen: list[float], dial: list[float],
            test_lengths: Path, split: str = "test") -> dict:
    """The issue's checks over the seeds, on the problems every evaluation holds. Differences between two methods
    are `seeded_paired_bootstrap` intervals (seeds and problems resampled); "no significant loss": the accuracy
    interval of (one model - other) does not lie entirely below 0."""
    from frugalthink.rl.budgets import load_base_lengths
    from frugalthink.util.stats import seeded_paired_bootstrap

    lengths = load_base_lengths(test_lengths)
    base = _records(out / f"base_eval-{split}")
    one = {t: [_records(out / f"s{s}" / f"tiers-{split}" / f"eval-{tier_name(t)}") for s in seeds]
           for t in tiers + unseen}
    alone = {t: [_records(out / f"s{s}" / f"only-{tier_name(t)}" / f"eval-{split}") for s in seeds] for t in tiers}
    dials = {t: [_records(out / f"s{s}" / f"dial-{t:g}" / f"eval-{split}") for s in seeds] for t in dial}
    keys = set(base) & set(lengths)
    for runs in [*one.values(), *alone.values(), *dials.values()]:
        for run in runs:
            keys &= set(run)
    keys = sorted(keys)
    if not keys:
        raise UserError(f"{out}: the evaluations share no problem")
    base_point = _point([base], keys)
    rows = []
    for t in tiers:
        point = _point(one[t], keys)
        single = _point(alone[t], keys)
        acc = seeded_paired_bootstrap(_columns(alone[t], keys, "correct"), _columns(one[t], keys, "correct"))
        tok = seeded_paired_bootstrap(_columns(alone[t], keys, "tokens"), _columns(one[t], keys, "tokens"))
        shared = [{k: run[k] for k in keys} for run in one[t]]
        over = [over_budget(run, t, lengths) for run in shared]
        row = {"tier": t, **point, "over_budget": statistics.fmean(over), "over_budget_by_seed": over,
               "overshoot": overshoot(shared, t, lengths),
               "alone": {**single, "over_budget": statistics.fmean(
                   over_budget({k: run[k] for k in keys}, t, lengths) for run in alone[t])},
               "accuracy_vs_alone": acc, "tokens_vs_alone": tok,
               "keeps_budget": statistics.fmean(over) <= OVER,
               "as_accurate_as_alone": acc["ci95"][1] >= 0,
               "tokens_within_alone_plus_10pct": point["tokens"] <= (1 + SLACK) * single["tokens"]}
        rows.append(row)
    for (t_up, upper), (t_low, lower) in zip(zip(tiers, rows), zip(tiers[1:], rows[1:]), strict=False):
        lower["shorter_than_above"] = 1 - lower["tokens"] / upper["tokens"]
        lower["tokens_vs_above"] = seeded_paired_bootstrap(_columns(one[t_up], keys, "tokens"),
                                                           _columns(one[t_low], keys, "tokens"))
        lower["falls_15pct"] = lower["shorter_than_above"] >= FALL and lower["tokens_vs_above"]["ci95"][1] < 0
    top = rows[0]
    keeps = seeded_paired_bootstrap([[float(base[k]["correct"]) for k in keys]], _columns(one[tiers[0]], keys, "correct"))
    unseen_rows = []
    for r in unseen:
        point = _point(one[r], keys)
        above = max((x for x in rows if x["tier"] > r), key=lambda x: -x["tier"], default=None)
        below = min((x for x in rows if x["tier"] < r), key=lambda x: -x["tier"], default=None)
        between = (above is not None and below is not None and below["tokens"] <= point["tokens"] <= above["tokens"])
        unseen_rows.append({"ratio": r, **point, "between_neighbours": between,
                            "over_budget": statistics.fmean(over_budget({k: run[k] for k in keys}, r, lengths)
                                                            for run in one[r])})
    dial_rows = [{"t": t, **_point(dials[t], keys)} for t in dial]
    for t_row, row in zip(tiers, rows, strict=True):  # is the tier beaten by a dial point, by the paired tests?
        row["against_dial"], row["dominated_by_dial"] = {}, []
        for t in dial:
            acc = seeded_paired_bootstrap(_columns(one[t_row], keys, "correct"), _columns(dials[t], keys, "correct"))
            tok = seeded_paired_bootstrap(_columns(one[t_row], keys, "tokens"), _columns(dials[t], keys, "tokens"))
            row["against_dial"][f"{t:g}"] = {"accuracy_diff": acc, "tokens_diff": tok}  # dial - tier
            if beaten(acc, tok):
                row["dominated_by_dial"].append(t)
    return {"split": split, "problems": len(keys), "seeds": seeds, "base": base_point, "tiers": rows, "unseen": unseen_rows,
            "dial": dial_rows, "high_tier_vs_base": keeps, "high_tier_keeps_base_accuracy": keeps["ci95"][1] >= 0,
            "top_tier_tokens_vs_base": top["tokens"] / base_point["tokens"]}


def beaten(acc: dict, tok: dict) -> bool:
    """The other point (a dial point) beats this one: significantly fewer tokens and not significantly less accurate,
    or significantly more accurate and not significantly longer (``acc`` and ``tok`` are other - this intervals).

    >>> beaten({"ci95": [-0.01, 0.01]}, {"ci95": [-3.0, -1.0]}), beaten({"ci95": [-0.03, -0.01]}, {"ci95": [-3, -1]})
    (True, False)
    """
    fewer, longer = tok["ci95"][1] < 0, tok["ci95"][0] > 0
    worse, better = acc["ci95"][1] < 0, acc["ci95"][0] > 0
    return (fewer and not worse) or (better and not longer)


def _yes(flag) -> str:
    return "-" if flag is None else ("yes" if flag else "**no**")


def format_verdict(v: dict) -> str:
    from frugalthink.util.tables import markdown_table

    b = v["base"]
    lines = [f"{v['problems']} problems, seeds {', '.join(map(str, v['seeds']))}; base {b['accuracy']:.3f} / "
             f"{b['tokens']:.1f} tokens", ""]
    head = ["tier", "accuracy", "tokens", "shorter than above", "over budget", "alone: acc / tokens",
            "acc - alone [95% CI]", "keeps budget", "as accurate as alone", "tokens <= alone + 10%", "falls 15%"]
    body = []
    for r in v["tiers"]:
        a = r["accuracy_vs_alone"]
        body.append([f"{r['tier']:g}", f"{r['accuracy']:.3f}", f"{r['tokens']:.1f}",
                     f"{r['shorter_than_above']:.0%}" if "shorter_than_above" in r else "-",
                     f"{r['over_budget']:.1%}", f"{r['alone']['accuracy']:.3f} / {r['alone']['tokens']:.1f}",
                     f"{a['mean_diff']:+.3f} [{a['ci95'][0]:+.3f}, {a['ci95'][1]:+.3f}]", _yes(r["keeps_budget"]),
                     _yes(r["as_accurate_as_alone"]), _yes(r["tokens_within_alone_plus_10pct"]),
                     _yes(r.get("falls_15pct"))])
    lines.append(markdown_table(head, body))
    lines += ["", "Per training seed (accuracy / tokens / over budget):", ""]
    lines.append(markdown_table(["tier", *[f"seed {s}" for s in v["seeds"]]], [
        [f"{r['tier']:g}", *[f"{a:.3f} / {t:.1f} / {o:.1%}" for a, t, o in
                             zip(r["accuracy_by_seed"], r["tokens_by_seed"], r["over_budget_by_seed"], strict=True)]]
        for r in v["tiers"]]))
    lines += ["", "How far over (completions of every seed): more than 10% over the budget, and the median overshoot of "
              "those over it:", ""]
    lines.append(markdown_table(["tier", "over by > 10%", "median overshoot (tokens)"], [
        [f"{r['tier']:g}", f"{r['overshoot']['over_by_10pct']:.1%}",
         "-" if r["overshoot"]["median_tokens_over"] is None else f"{r['overshoot']['median_tokens_over']:g}"]
        for r in v["tiers"]]))
    k = v["high_tier_vs_base"]
    lines += ["", f"High tier against the base: accuracy {k['mean_diff']:+.3f} [{k['ci95'][0]:+.3f}, "
              f"{k['ci95'][1]:+.3f}] -> keeps the base's accuracy: {_yes(v['high_tier_keeps_base_accuracy'])}; "
              f"tokens {v['top_tier_tokens_vs_base']:.2f} x the base's."]
    for u in v["unseen"]:
        lines.append(f"Unseen ratio {u['ratio']:g}: {u['accuracy']:.3f} / {u['tokens']:.1f} tokens, over budget "
                     f"{u['over_budget']:.1%}; between its neighbours: {_yes(u['between_neighbours'])}.")
    lines += ["", "Interpolation dial (base <-> the lowest tier's single-tier model, at that tier's prompt):", ""]
    lines.append(markdown_table(["t", "accuracy", "tokens"],
                                [[f"{d['t']:g}", f"{d['accuracy']:.3f}", f"{d['tokens']:.1f}"] for d in v["dial"]]))
    lines += ["", "Each tier against each dial point (dial - tier, 95% CI over seeds and problems; beaten: significantly "
              "fewer tokens and not significantly less accurate, or the reverse):", ""]
    body = []
    for r in v["tiers"]:
        for t, d in r["against_dial"].items():
            a, k = d["accuracy_diff"], d["tokens_diff"]
            body.append([f"{r['tier']:g}", t, f"{a['mean_diff']:+.3f} [{a['ci95'][0]:+.3f}, {a['ci95'][1]:+.3f}]",
                         f"{k['mean_diff']:+.1f} [{k['ci95'][0]:+.1f}, {k['ci95'][1]:+.1f}]",
                         "**yes**" if float(t) in r["dominated_by_dial"] else "no"])
    lines.append(markdown_table(["tier", "dial t", "accuracy", "tokens", "beaten"], body))
    return "\n".join(lines)


def plot(v: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([v["base"]["tokens"]], [v["base"]["accuracy"]], "k*", ms=12, label="base")
    rows = v["tiers"]
    ax.plot([r["tokens"] for r in rows], [r["accuracy"] for r in rows], "o-", label="one model, tiers")
    for r in rows:
        ax.annotate(f"{r['tier']:g}", (r["tokens"], r["accuracy"]), textcoords="offset points", xytext=(4, 4))
    ax.plot([r["alone"]["tokens"] for r in rows], [r["alone"]["accuracy"] for r in rows], "s", label="one tier alone")
    if v["unseen"]:
        ax.plot([u["tokens"] for u in v["unseen"]], [u["accuracy"] for u in v["unseen"]], "D", label="unseen ratio")
    if v["dial"]:
        ax.plot([d["tokens"] for d in v["dial"]], [d["accuracy"] for d in v["dial"]], "x--", label="dial (merge)")
    ax.set_xlabel("mean tokens")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected numbers separated by commas") from None


def run(args) -> int:
    from frugalthink.rl.train import load_recipe

    recipe = load_recipe(args.recipe, None, args.set)
    seeds = [int(s) for s in _floats(args.seeds, "--seeds")]
    base = args.base
    if args.warm_start:
        recipe = replace(recipe, warm_start=args.warm_start, base_lengths=None)
    if recipe.warm_start:  # trained once for the whole study; every run starts from it
        from frugalthink.rl.budgets import warm_start

        base = base or recipe.model
        recipe = warm_start(recipe, Path(args.out) / "warm")
    result = run_study(recipe, Path(args.out), seeds, args.split, _floats(args.unseen, "--unseen"),
                       _floats(args.dial, "--dial"), samples=args.samples, base=base)
    print(format_verdict(result))
    return 0
