"""`frugalthink sweep`, `report` and `pick`: the efficiency family from one recipe."""

from __future__ import annotations

from pathlib import Path

from frugalthink.commands.evaluate import EvalSettings
from frugalthink.errors import UserError
from frugalthink.family import family_table, load_family, pick, sweep


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.05,0.1,0.2,0.4") from None


def sweep_eval_settings(recipe, args) -> EvalSettings:
    """How a sweep evaluates: the recipe's ``eval`` section when it has one (the R1 recipes: the paper's evaluation
    sets, samples per problem and message), else the recipe's own task on its test split. ``--task`` and the other
    flags override; a task other than the training task does not inherit the training task's options."""
    ev = recipe.eval or {}
    tasks = ev.get("tasks", {})
    task = args.task or (next(iter(tasks)) if tasks else recipe.task)
    if task == recipe.task and not tasks:
        options = recipe.task_options or None
    else:
        options = {"message": ev["message"]} if "message" in ev and task != "chain" else None
    return EvalSettings(model=recipe.model, task=task, split="test", samples=args.samples or tasks.get(task),
                        temperature=args.temperature if args.temperature is not None else ev.get("temperature", 0.6),
                        max_new_tokens=args.max_new_tokens or ev.get("max_new_tokens"), limit=args.limit, seed=0,
                        latency_requests=args.latency_requests, task_options=options)


def run_sweep(args) -> int:
    from frugalthink.commands.train import load_recipe

    recipe = load_recipe(args.recipe, None, args.set)
    alphas = parse_floats(args.alphas, "--alphas")
    seeds = [int(s) for s in parse_floats(args.seeds, "--seeds")]
    settings = sweep_eval_settings(recipe, args)
    fam = sweep(recipe, alphas, args.out, settings, seeds=seeds, parallel=args.parallel)
    print(family_table(fam))
    print(f"family: {Path(args.out) / 'family.json'}")
    return 0


def run_report(args) -> int:
    from pathlib import Path

    from frugalthink.report import write_report

    if (Path(args.dir) / "comparison.json").exists():  # a `frugalthink sidebyside` directory
        from frugalthink.comparison import write_comparison_report

        md, png = write_comparison_report(args.dir)
        print(md.read_text())
        print(f"plot: {png}")
        return 0
    path = write_report(args.dir)
    print(family_table(load_family(args.dir)))
    print(f"report: {path}")
    return 0


def run_pick(args) -> int:
    fam = load_family(args.dir)
    choice = pick(fam, args.min_accuracy, args.max_tokens, args.max_latency_ms)
    if choice is None:
        print("no member of the family meets the constraint")
        return 1
    lat = choice.get("latency_p50_ms")
    lat_s = f"{lat:.1f} ms" if lat is not None else "n/a"
    print(f"{choice['name']}: model {choice['model']} | accuracy {choice['accuracy']:.3f} | "
          f"mean tokens {choice['mean_tokens']:.1f} | p50 latency {lat_s}")
    return 0
