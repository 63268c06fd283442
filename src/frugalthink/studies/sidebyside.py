"""`frugalthink sidebyside`: every method on the embedded default, trained and measured the same way.

Stages (each skips what is finished, so a re-run resumes):

1. the demo's base and efficiency family (``--demo DIR``, run first if missing)          -> ours, alpha=0 (RL, no
   length term)
2. generation cutoff at several budgets, answer forced                                   -> OUT/cutoff-B/
3. SFT on the shortest correct self-sample and DPO shortest-vs-longest, from one pool    -> OUT/pool, OUT/sft, OUT/dpo
4. the peer length rewards, same RLOO trainer, data, sizes and steps as ours             -> OUT/<reward>/
5. evaluation of everything with the demo's settings, comparison.json/.md/.png           -> OUT/

Every RL run uses the demo's RL recipe (`recipes/tiny/rl.yaml`) and changes only ``reward``/``reward_options``, as
written in `recipes/tiny/peers/<reward>.yaml` (the one place the rescaled peer settings live).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from frugalthink.config import from_dict, load_yaml
from frugalthink.eval.evaluate import evaluate
from frugalthink.report.comparison import point_of, write_comparison_report
from frugalthink.report.family import load_family
from frugalthink.studies import demo as demo_cmd
from frugalthink.studies.family import member_dir, train_runs
from frugalthink.util.errors import UserError

STUDY = "studies/sidebyside"  # the study file (recipes/studies/sidebyside.yaml)


@dataclass
class SideBySideStudy:
    """A side-by-side study file: the peers (name -> title), their knob variants, ours under DLER's setup, and the
    baselines' settings. Peer rewards' rescaled options live in recipes/tiny/peers/<name>.yaml (per-token weights
    are the papers' times 30: their traces run to thousands of tokens, the tiny model's to ~50-170; caps and caches
    are fractions of our 256-token cap). See docs/comparison.md."""

    peers: dict[str, str]
    variants: dict[str, list[dict]] = field(default_factory=dict)
    ours_dler_title: str = "ours, DLER's setup (alpha sweep)"
    cutoff_budgets: list[int] = field(default_factory=list)
    l1_eval_targets: list[int] = field(default_factory=list)
    shortest: dict = field(default_factory=dict)
    sft_settings: list[list[float]] = field(default_factory=list)
    dpo_settings: list[list[float]] = field(default_factory=list)
    quick_budgets: list[int] = field(default_factory=list)
    quick_l1_targets: list[int] = field(default_factory=list)
    quick_shortest: dict = field(default_factory=dict)

    def validate(self) -> None:
        unknown = [p for p in self.peers if p not in PEER_REWARDS]
        if unknown:
            raise UserError(f"peers: {', '.join(unknown)} has no recipe tiny/peers/<name>.yaml "
                            f"(known: {', '.join(PEER_REWARDS)})")
        bad = sorted(set(self.variants) - set(self.peers))
        if bad:
            raise UserError(f"variants: {', '.join(bad)} not among the study's peers")
        for name in ("sft_settings", "dpo_settings"):
            if any(len(x) != 2 for x in getattr(self, name)):
                raise UserError(f"{name}: each entry is [learning_rate, sft_weight], got {getattr(self, name)}")


# The peers with a shipped recipe (recipes/tiny/peers/<name>.yaml)
PEER_REWARDS = ("kimi", "l1_max", "shorter_better", "grpo_lead", "cosine", "dapo", "dler", "laser", "laser_d",
                "laser_de", "drpo")


def load_study(path: str = STUDY) -> SideBySideStudy:
    return from_dict(SideBySideStudy, load_yaml(path), where=str(path))
# The optimisation options a peer's recipe may set besides its reward (its published setup: Laser's, DLER's, DRPO's).
PEER_SETUP = ("update_rule", "advantage", "beta", "kl_loss_coef", "entropy_coeff", "loss_agg_mode", "ratio_level",
              "temperature", "epsilon_high", "weight_decay", "batch_normalize", "dynamic_sampling",
              "max_sampling_rounds", "sampling_limit", "updates_per_rollout", "drpo_options")


# Token lengths among the peers' options: the shipped peer recipes state them against the chain demo's cap
# (`tiny/rl`'s max_completion_length); on a task with another cap they scale with it (`length_scale`).
LENGTH_OPTIONS = {"dler": ("limit",), "laser": ("target",), "l1_max": ("targets",)}


def length_scale(cap: int) -> float:
    """How a token length written for the chain demo maps to a task whose generation cap is ``cap`` (tally: 384 /
    256 = 1.5): the peers' limits and targets, the cutoff budgets and the L1 evaluation targets keep their share of
    the cap, as each paper sets them against its own."""
    return cap / load_yaml("tiny/rl")["max_completion_length"]


def scaled(lengths, scale: float) -> tuple[int, ...]:
    return tuple(max(1, round(n * scale)) for n in lengths)


def peer_options(reward: str, scale: float = 1.0) -> dict:
    """The rescaled options of a peer reward, from its shipped recipe ``tiny/peers/<reward>.yaml``; its token
    lengths times ``scale`` (`length_scale`)."""
    options = dict(load_yaml(f"tiny/peers/{reward}").get("reward_options") or {})
    for name in LENGTH_OPTIONS.get(reward, ()):
        if name in options:
            value = options[name]
            options[name] = list(scaled(value, scale)) if isinstance(value, list) else scaled([value], scale)[0]
    return options


def peer_setup(peer: str) -> dict:
    """The optimisation options a peer's shipped recipe sets (DLER: batch normalisation, upper clip 0.28, dynamic
    sampling; DRPO: its own loss, one update per rollout, no reference model)."""
    data, base = load_yaml(f"tiny/peers/{peer}"), load_yaml("tiny/rl")
    return {k: data[k] for k in PEER_SETUP if k in data and data[k] != base.get(k)}


def peer_reward(peer: str) -> str:
    """The reward a peer trains with (the peer's name, except DRPO, whose method is a loss on 0/1 correctness)."""
    return load_yaml(f"tiny/peers/{peer}")["reward"]


def peer_recipe(rl_recipe, peer: str, seed: int = 0, variant: dict | None = None):
    options = peer_options(peer, length_scale(rl_recipe.max_completion_length))
    return replace(rl_recipe, reward=peer_reward(peer), reward_options={**options, **(variant or {})},
                   alpha=0.0, seed=seed, **peer_setup(peer))


def _variant_tag(variant: dict) -> str:
    return "-".join(f"{k}{v:g}" for k, v in sorted(variant.items()))


def _seeded(name: str, seed: int) -> str:
    return name if not seed else f"{name}-seed{seed}"


def _titled(title: str, seed: int) -> str:
    return title if not seed else f"{title} (seed {seed})"


def run_sidebyside(demo_dir: Path, out: Path, quick: bool = False, parallel: int = 2,
                   peers: list[str] | None = None, seeds: list[int] | None = None, task: str | None = None,
                   study: SideBySideStudy | None = None) -> dict:
    """Every method on the demo's base, data, trainer and evaluation; each stage resumes.

    ``seeds``: training seeds of the RL methods (default [0]). Seed 0 of ours is the demo's family; other seeds
    of ours are trained here (``OUT/ours/alpha-A-seedS``), with the peers (``OUT/<reward>-seedS``). ``study``: the
    methods and their settings (default: recipes/studies/sidebyside.yaml)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    study = study or load_study()
    peers, seeds = peers or list(study.peers), seeds or [0]
    task = demo_task(demo_dir, task)
    fam = _demo_family(demo_dir, quick, task)
    _, rl_recipe = demo_cmd.demo_recipes(demo_dir, quick, task)
    settings = demo_cmd.demo_eval_settings(demo_dir, rl_recipe, quick)
    base_point = point_of("base", _summary(fam["base"]["eval_dir"]), fam["base"]["eval_dir"])
    methods = _family_methods(fam)
    print("== 2/5 generation cutoff (answer forced at the budget)", flush=True)
    methods.append(_cutoff_method(study, settings, out, quick))
    print("== 3/5 SFT on shortest correct / DPO shortest-vs-longest (TRL)", flush=True)
    methods += _offline_methods(study, demo_dir, rl_recipe, settings, out, quick)
    print(f"== 4/5 peer rewards with the same RLOO trainer ({', '.join(peers)}; seeds {seeds})", flush=True)
    alphas = [m["alpha"] for m in fam["members"] if not m.get("seed")]
    variants = [] if quick else [(r, v) for r in peers for v in study.variants.get(r, ())]
    _train_rl_methods(study, rl_recipe, out, peers, seeds, alphas, variants, parallel)
    print("== 5/5 evaluation and comparison", flush=True)
    methods += _extra_seed_methods(settings, out, seeds, alphas)
    if "dler" in peers:
        methods.append(_ours_dler_method(study, settings, out, alphas))
    methods += _peer_methods(study, settings, out, peers, seeds, variants, quick)
    _order(methods)
    print("== latency, interleaved: one request at a time, every model in turn", flush=True)
    interleaved_latency([base_point] + [p for m in methods for p in m["points"]],
                        requests=settings.latency_requests, out=out / "latency_interleaved.jsonl")
    comp = {"base": base_point, "oracle_mean_tokens": fam["base"].get("oracle_mean_tokens"), "methods": methods,
            "demo_dir": str(demo_dir), "seeds": seeds,
            "peer_options": {r: peer_options(r, length_scale(rl_recipe.max_completion_length)) for r in peers},
            "quick": quick, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    wall = _write_comparison(comp, out, t0)
    md, png = write_comparison_report(out)
    print(md.read_text())
    print(f"plot: {png}\ntable: {md}\nwall time {wall:.0f}s")
    return comp


def demo_task(demo_dir: Path, task: str | None) -> str:
    """The task of the demo in ``demo_dir`` (a finished demo records it; one from before tally is chain's); a
    ``--task`` that disagrees with it is an error."""
    summary = demo_dir / "summary.json"
    done = json.loads(summary.read_text()).get("task", "chain") if summary.exists() else None
    if task and done and task != done:
        raise UserError(f"--demo {demo_dir} holds a demo of task {done!r}, not {task!r}; use another --demo")
    return task or done or demo_cmd.DEMO_TASK


def _demo_family(demo_dir: Path, quick: bool, task: str) -> dict:
    if (demo_dir / "family.json").exists() and (demo_dir / "summary.json").exists():
        print(f"== 1/5 base and family: reusing {demo_dir}", flush=True)
        return load_family(demo_dir)
    print(f"== 1/5 base and family -> {demo_dir} (the demo)", flush=True)
    return demo_cmd.run_demo(demo_dir, quick, task=task)


def _family_methods(fam: dict) -> list[dict]:
    """Ours (alpha > 0) and the correctness-only control (alpha = 0) from the demo's family, seed 0."""
    def points(keep):
        return [point_of(f"alpha={m['alpha']:g}", _summary(m["eval_dir"]), m["eval_dir"])
                for m in fam["members"] if keep(m["alpha"]) and not m.get("seed")]

    return [{"method": "ours (alpha sweep)", "kind": "ours", "points": points(lambda a: a > 0)},
            {"method": "RL correctness only (alpha=0)", "kind": "RL baseline", "points": points(lambda a: a == 0)}]


def _cutoff_method(study: SideBySideStudy, settings, out: Path, quick: bool) -> dict:
    cut = []
    for b in study.quick_budgets if quick else scaled(study.cutoff_budgets, length_scale(settings.max_new_tokens)):
        d = out / f"cutoff-{b}"
        cut.append(point_of(f"B={b}", evaluate(replace(settings, budget=b), d, quiet=True), d))
        print(f"   cutoff B={b}: accuracy {cut[-1]['accuracy']:.3f}, mean tokens {cut[-1]['mean_tokens']:.1f}",
              flush=True)
    return {"method": "generation cutoff", "kind": "inference baseline", "points": cut}


def _offline_methods(study: SideBySideStudy, demo_dir: Path, rl_recipe, settings, out: Path, quick: bool) -> list[dict]:
    from frugalthink.rl.shortest import ShortestRecipe, train_shortest

    sizes = {**study.shortest, **(study.quick_shortest if quick else {})}
    methods = []
    for method, title, grid in (("sft", "SFT on shortest correct", study.sft_settings),
                                ("dpo", "DPO short vs long", study.dpo_settings)):
        pts, notes = [], []
        for lr, sft_weight in grid:
            recipe = ShortestRecipe(model=str(demo_dir / "base"), method=method, task=rl_recipe.task,
                                    task_options=dict(rl_recipe.task_options),
                                    max_new_tokens=rl_recipe.max_completion_length, seed=rl_recipe.seed,
                                    sft_weight=sft_weight, **{**sizes, "learning_rate": lr})
            tag = f"lr{lr:g}" + (f"-sft{sft_weight:g}" if sft_weight else "")
            run_dir = out / f"{method}-{tag}"
            try:
                train_shortest(recipe, run_dir, pool_dir=out / "pool", console=True)
            except UserError as exc:  # e.g. a too-weak model leaves no pairs: report it, keep the other methods
                print(f"   {title}: not trained: {exc}", flush=True)
                notes.append(str(exc))
                continue
            summary = evaluate(replace(settings, model=str(run_dir)), run_dir / "eval", quiet=True)
            pts.append(point_of(f"lr={lr:g}" + (f" +SFT x{sft_weight:g}" if sft_weight else ""), summary,
                                run_dir / "eval"))
        methods.append({"method": title, "kind": "offline baseline", "points": pts,
                        **({"note": notes[0]} if notes and not pts else {})})
    return methods


def _train_rl_methods(study: SideBySideStudy, rl_recipe, out: Path, peers, seeds, alphas, variants,
                      parallel: int) -> None:
    """Peers at every seed, ours at the seeds beyond the demo's, the peer knob variants (seed 0), and ours under
    DLER's setup (that of recipes/tiny/peers/dler.yaml) when DLER runs."""
    runs = [(peer_recipe(rl_recipe, r, seed), out / _seeded(r, seed), f"[{_seeded(r, seed)}]")
            for seed in seeds for r in peers]
    runs += [(replace(rl_recipe, alpha=a, seed=seed), member_dir(out / "ours", a, seed), f"[alpha={a:g} seed={seed}]")
             for seed in seeds if seed for a in alphas]
    runs += [(peer_recipe(rl_recipe, r, 0, v), out / f"{r}-{_variant_tag(v)}", f"[{r}-{_variant_tag(v)}]")
             for r, v in variants]
    if "dler" in peers:  # DLER's claim: the setup matters more than the penalty -- our reward under that setup
        runs += [(replace(rl_recipe, alpha=a, **peer_setup("dler")), member_dir(out / "ours-dler", a, 0),
                  f"[alpha={a:g} DLER setup]") for a in alphas if a > 0]
    train_runs(runs, parallel=parallel, console=True)


def _extra_seed_methods(settings, out: Path, seeds, alphas) -> list[dict]:
    methods = []
    for seed in (s for s in seeds if s):
        for title, kind, chosen in (("ours (alpha sweep)", "ours", [a for a in alphas if a > 0]),
                                    ("RL correctness only (alpha=0)", "RL baseline", [a for a in alphas if a == 0])):
            methods.append({"method": _titled(title, seed), "family": title, "seed": seed, "kind": kind,
                            "points": _member_points(settings, out / "ours", chosen, seed)})
    return methods


def _member_points(settings, root: Path, alphas, seed: int) -> list[dict]:
    """One evaluated point per alpha member trained under ``root`` (`family.member_dir`)."""
    pts = []
    for a in alphas:
        run_dir = member_dir(root, a, seed)
        d = run_dir / "eval"
        pts.append(point_of(f"alpha={a:g}", evaluate(replace(settings, model=str(run_dir)), d, quiet=True), d))
    return pts


def _ours_dler_method(study: SideBySideStudy, settings, out: Path, alphas) -> dict:
    return {"method": study.ours_dler_title, "kind": "ours",
            "points": _member_points(settings, out / "ours-dler", [a for a in alphas if a > 0], 0)}


def _peer_methods(study: SideBySideStudy, settings, out: Path, peers, seeds, variants, quick: bool) -> list[dict]:
    methods = []
    for seed in seeds:
        for reward in peers:
            run_dir = out / _seeded(reward, seed)
            if reward == "l1_max":  # one point per budget written into the prompt
                pts = []
                targets = scaled(study.l1_eval_targets, length_scale(settings.max_new_tokens))
                for t in study.quick_l1_targets if quick else targets:
                    d = run_dir / f"eval-target-{t}"
                    pts.append(point_of(f"target={t}", evaluate(
                        replace(settings, model=str(run_dir), length_target=t), d, quiet=True), d))
            else:
                d = run_dir / "eval"
                label = _variant_tag(peer_options(reward)) if reward in study.variants else reward
                pts = [point_of(label, evaluate(replace(settings, model=str(run_dir)), d, quiet=True), d)]
                for v in ([v for r, v in variants if r == reward] if not seed else []):
                    vdir = out / f"{reward}-{_variant_tag(v)}"
                    pts.append(point_of(_variant_tag({**peer_options(reward), **v}), evaluate(
                        replace(settings, model=str(vdir)), vdir / "eval", quiet=True), vdir / "eval"))
            methods.append({"method": _titled(study.peers[reward], seed), "family": study.peers[reward],
                            "seed": seed, "kind": "peer reward (RLOO)", "points": pts,
                            "train": json.loads((run_dir / "train_summary.json").read_text())})
    return methods


def _order(methods: list[dict]) -> None:
    """Methods of one family together, seeds in order, families in first-seen order."""
    order: dict[str, int] = {}
    for m in methods:
        m.setdefault("family", m["method"])
        m.setdefault("seed", 0)
        order.setdefault(m["family"], len(order))
    methods.sort(key=lambda m: (order[m["family"]], m["seed"]))


def _write_comparison(comp: dict, out: Path, t0: float) -> float:
    """Write comparison.json; each invocation resumes the last, so every pass's wall time is kept."""
    path = out / "comparison.json"
    wall = time.perf_counter() - t0
    passes = json.loads(path.read_text()).get("passes", []) if path.exists() else []
    comp["passes"] = passes + [{"finished": comp["finished"], "wall_s": round(wall, 1)}]
    path.write_text(json.dumps(comp, indent=2) + "\n")
    return wall


def interleaved_latency(points: list[dict], requests: int, out: Path) -> None:
    """Per-request latency of every point's model, measured in turns on the same prompts.

    Each evaluation also times requests, but at different moments of a long run, where a busy or throttled machine
    shifts them by tens of percent. Here request i of every model runs back to back (round-robin), so drift hits
    all models alike. Adds ``latency_mean_ms`` and ``latency_ms_per_token`` to each point; raw rows go to ``out``.
    """
    import random
    import statistics

    from frugalthink.eval.evaluate import EvalSettings, load_problems
    from frugalthink.generation.backends import BudgetForcedGenerator, HFGenerator, make_generator
    from frugalthink.tasks.prompts import build_prompt
    from frugalthink.util.jsonl import append_jsonl, read_jsonl_tolerant
    from frugalthink.util.progress import progress_bar

    jobs = []
    gens: dict[tuple[str, str], HFGenerator] = {}
    for p in points:
        # an evaluation written before the fast engine existed was made with transformers' generate
        config = {"backend": "hf", **json.loads(Path(p["eval_dir"], "eval_config.json").read_text())["config"]}
        cfg = EvalSettings(**config).resolved()
        gen = gens.get(key := (cfg.model, cfg.backend)) or gens.setdefault(key, make_generator(cfg.backend, cfg.model))
        task, problems = load_problems(cfg, gen.tokenizer)
        if cfg.budget:
            gen = BudgetForcedGenerator(gen, cfg.budget, task.force_answer_text, task.answer_tokens)
        chosen = sorted(random.Random(cfg.seed).sample(range(len(problems)), min(requests, len(problems))))
        prompts = [build_prompt(gen.tokenizer, task, problems[i], length_target=cfg.length_target) for i in chosen]
        jobs.append((p, gen, cfg, prompts))
    done = {(r["eval_dir"], r["request"]): r for r in read_jsonl_tolerant(out)}
    for _, gen, cfg, prompts in jobs:  # warm-up, one request each
        gen.timed(prompts[0], cfg.max_new_tokens, cfg.temperature, seed=cfg.seed)
    with progress_bar("interleaved latency", total=requests * len(jobs)) as bar:
        k = 0
        for i in range(requests):
            rows = []
            for p, gen, cfg, prompts in jobs:
                k += 1
                if i >= len(prompts) or (p["eval_dir"], i) in done:
                    continue
                g, ms = gen.timed(prompts[i], cfg.max_new_tokens, cfg.temperature, seed=cfg.seed + i)
                rows.append({"eval_dir": p["eval_dir"], "request": i, "tokens": g.tokens, "latency_ms": round(ms, 3)})
            append_jsonl(out, rows)
            done.update({(r["eval_dir"], r["request"]): r for r in rows})
            bar(k)
    for p, *_ in jobs:
        rows = [r for (d, _), r in done.items() if d == p["eval_dir"]]
        if rows:
            p["latency_mean_ms"] = round(statistics.fmean(r["latency_ms"] for r in rows), 2)
            p["latency_ms_per_token"] = round(sum(r["latency_ms"] for r in rows) / max(1, sum(r["tokens"] for r in rows)), 3)


def _summary(eval_dir) -> dict:
    return json.loads(Path(eval_dir, "summary.json").read_text())


def run(args) -> int:
    study = load_study(args.study)
    peers = args.peers.split(",") if args.peers else None
    if peers:
        unknown = [p for p in peers if p not in study.peers]
        if unknown:
            raise UserError(f"--peers: unknown {', '.join(unknown)} (known: {', '.join(study.peers)})")
    from frugalthink.studies.sweep import parse_seeds

    seeds = parse_seeds(args.seeds)
    task = args.task or (None if args.demo else demo_cmd.DEMO_TASK)
    demo = Path(args.demo or demo_cmd.demo_dir(task))
    task = demo_task(demo, task)
    run_sidebyside(demo, Path(args.out or f"runs/compare-{task}"), quick=args.quick, parallel=args.parallel,
                   peers=peers, seeds=seeds, task=task, study=study)
    return 0
