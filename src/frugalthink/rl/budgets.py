"""One model, every tier, by budgets that pull both ways (recipe ``budget_tiers``).

Each training problem is rolled out at every tier in the same rollout (a problem's tiers side by side: the trainer's
`frugalthink.rl.tiers.BlockRepeatSampler`), the tier written into the prompt (`Task.ratio_message`: a budget ratio
r; with ``budget_unit: tokens`` an absolute budget, `Task.budget_message`). A tier's budget on problem x is

    B(x) = r * L(x)

where L(x) is the base model's mean length of its *correct* samples on x (all its samples when none is correct),
measured once before training (`measure_base_lengths`) and stored with the run, so a hard problem keeps a larger
budget. The top tier (r >= 1, or a token budget at the cap) has no budget: correctness alone at the full cap. The
per-tier rewards are in `frugalthink.rl.rewards` (``budget_cutoff``, ``budget_l1``, ``budget_efficiency``); with the
cutoff a tier's rollouts stop at B(x) (``cap_rollouts``). Their option ``under`` makes the targets two-sided: a
correct sample shorter than its tier's target (the top tier's: L(x)) loses a share of its reward, so that every tier
is pulled up toward its target as well as held under its budget (`rewards.pull_up`). RLOO baselines are within
each (problem, tier) group; ``batch_normalize`` divides by the standard deviation over the whole rollout.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from frugalthink.rl.rewards import BUDGET_REWARDS
from frugalthink.util.errors import UserError

UNITS = ("ratio", "tokens")
LENGTHS_FILE = "base_lengths.json"


def is_top(tier: float, unit: str, cap: int) -> bool:
    """The tier without a budget: a ratio of 1 or more, or a token budget at or past the generation cap."""
    return tier >= 1.0 if unit == "ratio" else tier >= cap


def budget(tier: float, length: float, unit: str, cap: int) -> int:
    """A tier's target on one problem: ``round(tier * L(x))`` for a ratio, the tier itself for tokens; at least 1
    token and never past the cap. Below the top tier it is the budget B(x); the top tier's (L(x) at ratio 1) has no
    cutoff and is read only by the pull toward it (the budget rewards' ``under``).

    >>> budget(0.5, 81.0, "ratio", 384), budget(1.0, 81.0, "ratio", 384), budget(48, 81.0, "tokens", 384)
    (40, 81, 48)
    """
    value = tier * length if unit == "ratio" else tier
    return int(min(cap, max(1, round(value))))


def lengths_from_records(records: list[dict]) -> dict[str, dict]:
    """L(x) per problem from an evaluation's records: ``length`` the mean tokens of its correct samples (of all its
    samples when none is correct), with ``correct`` and ``samples`` counted.

    >>> lengths_from_records([{"problem_id": "a", "tokens": 10, "correct": True},
    ...                       {"problem_id": "a", "tokens": 30, "correct": False},
    ...                       {"problem_id": "b", "tokens": 50, "correct": False}])
    {'a': {'length': 10.0, 'correct': 1, 'samples': 2}, 'b': {'length': 50.0, 'correct': 0, 'samples': 1}}
    """
    by_problem: dict[str, list[dict]] = {}
    for r in records:
        by_problem.setdefault(str(r["problem_id"]), []).append(r)
    out = {}
    for pid, rs in by_problem.items():
        right = [r["tokens"] for r in rs if r["correct"]]
        out[pid] = {"length": float(statistics.fmean(right or [r["tokens"] for r in rs])), "correct": len(right),
                    "samples": len(rs)}
    return out


def load_base_lengths(path: str | Path) -> dict[str, dict]:
    """L(x) from a ``base_lengths.json`` or from an evaluation folder of the base (its ``records.jsonl``)."""
    from frugalthink.util.jsonl import read_jsonl_tolerant

    path = Path(path)
    if path.is_dir():
        if (path / LENGTHS_FILE).exists():
            path = path / LENGTHS_FILE
        elif (path / "records.jsonl").exists():
            return lengths_from_records(read_jsonl_tolerant(path / "records.jsonl"))
        else:
            raise UserError(f"base_lengths: {path} holds neither {LENGTHS_FILE} nor an evaluation's records.jsonl")
    if not path.exists():
        raise UserError(f"base_lengths: {path} does not exist")
    try:
        data = json.loads(path.read_text())
        return {str(k): {"length": float(v["length"]), **{n: v[n] for n in ("correct", "samples") if n in v}}
                for k, v in data["problems"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path}: not a base_lengths file (expected {{\"problems\": {{id: {{\"length\": ...}}}}}})") \
            from None


def write_base_lengths(path: Path, lengths: dict[str, dict], source: dict) -> None:
    path.write_text(json.dumps({"source": source, "problems": lengths}, indent=1) + "\n")


def measure_base_lengths(recipe, problems: list, out: Path, quiet: bool = False) -> dict[str, dict]:
    """L(x) of the training problems: ``base_samples`` samples of the base (the recipe's model, temperature and cap)
    per problem, evaluated into ``out/base_lengths_eval`` (resumable) and kept in ``out/base_lengths.json``; or read
    from the recipe's ``base_lengths`` when it names a file or folder (measured once, shared by runs)."""
    if recipe.base_lengths:
        lengths = load_base_lengths(recipe.base_lengths)
    else:
        from frugalthink.eval.evaluate import EvalSettings, evaluate
        from frugalthink.util.jsonl import read_jsonl_tolerant

        folder = out / "base_lengths_eval"
        settings = EvalSettings(model=recipe.model, task=recipe.task, split=recipe.train_split,
                                samples=recipe.base_samples, temperature=recipe.temperature,
                                max_new_tokens=recipe.max_completion_length, limit=len(problems), seed=recipe.seed,
                                latency_requests=0, task_options=recipe.task_options or None)
        evaluate(settings, folder, quiet=True)
        lengths = lengths_from_records(read_jsonl_tolerant(folder / "records.jsonl"))
    missing = [p.id for p in problems if str(p.id) not in lengths]
    if missing:
        raise UserError(f"base_lengths: no L(x) for {len(missing)} of the {len(problems)} training problems "
                        f"(first: {missing[0]}); measure it on the recipe's train_split and num_prompts")
    write_base_lengths(out / LENGTHS_FILE, {str(p.id): lengths[str(p.id)] for p in problems},
                       {"model": recipe.model, "split": recipe.train_split, "samples": recipe.base_samples,
                        "from": str(recipe.base_lengths or out / "base_lengths_eval")})
    if not quiet:
        found = [lengths[str(p.id)]["length"] for p in problems]
        print(f"L(x): the base's mean correct length on {len(problems)} problems of {recipe.train_split}, mean "
              f"{statistics.fmean(found):.1f} tokens (min {min(found):.0f}, max {max(found):.0f}); {out / LENGTHS_FILE}")
    return lengths


def training_rows(problems: list, tiers: list[float], lengths: dict[str, dict], unit: str, cap: int,
                  cap_rollouts: bool) -> list[dict]:
    """One row per problem and tier, a problem's tiers consecutive (one block): the problem's index, the tier,
    ``target`` its target length (`budget`), ``top`` (the top tier: no budget) and ``cap`` where its rollout stops
    (the budget with ``cap_rollouts``, else 0: the run's cap).

    >>> from types import SimpleNamespace as P
    >>> training_rows([P(id="a")], [1.0, 0.5], {"a": {"length": 60.0}}, "ratio", 384, True)
    [{'index': 0, 'tier': 1.0, 'target': 60, 'top': True, 'cap': 0}, {'index': 0, 'tier': 0.5, 'target': 30, 'top': False, 'cap': 30}]
    """
    rows = []
    for i, p in enumerate(problems):
        for tier in tiers:
            b = budget(tier, lengths[str(p.id)]["length"] if unit == "ratio" else 0.0, unit, cap)
            top = is_top(tier, unit, cap)
            rows.append({"index": i, "tier": float(tier), "target": b, "top": top,
                         "cap": b if cap_rollouts and not top else 0})
    return rows


def warm_start_targets(records: list[dict], tiers: list[float], unit: str, cap: int) -> list[tuple[str, float, dict]]:
    """The optional warm start's data (`frugalthink shortest --method tiers`): the model's own correct samples
    bucketed into tiers by length. For each problem and tier, the longest correct, finished sample inside the tier's
    budget B(x) (the most thinking the tier allows; L(x) from the same samples); for the top tier the correct
    sample closest to L(x). A tier whose budget no correct sample of the problem fits is left out there.

    >>> recs = [{"problem_id": "a", "sample": i, "tokens": n, "correct": True, "truncated": False}
    ...         for i, n in enumerate((20, 40, 60))]
    >>> [(t, r["tokens"]) for _, t, r in warm_start_targets(recs, [1.0, 0.6, 0.3], "ratio", 384)]
    [(1.0, 40), (0.6, 20)]
    """
    lengths = lengths_from_records(records)
    by_problem: dict[str, list[dict]] = {}
    for r in records:
        if r["correct"] and not r.get("truncated"):
            by_problem.setdefault(str(r["problem_id"]), []).append(r)
    out = []
    for pid in sorted(by_problem):
        rs, mean = by_problem[pid], lengths[pid]["length"]
        for tier in tiers:
            b = budget(tier, mean, unit, cap)
            if is_top(tier, unit, cap):
                out.append((pid, tier, min(rs, key=lambda r: (abs(r["tokens"] - mean), r["sample"]))))
                continue
            fits = [r for r in rs if r["tokens"] <= b]
            if fits:
                out.append((pid, tier, max(fits, key=lambda r: (r["tokens"], -r["sample"]))))
    return out


def warm_start(recipe, folder: Path, console: bool = True):
    """The recipe's ``warm_start``: the model fine-tuned on its own correct samples bucketed into the recipe's tiers
    (`frugalthink.rl.shortest`, ``method: tiers``) into ``folder`` (once; a finished one is reused); returns the
    recipe that starts from it, its pool of the model's samples as L(x), and no warm start of its own."""
    from dataclasses import replace

    from frugalthink.rl.shortest import load_shortest_recipe, train_shortest

    warm = load_shortest_recipe(recipe.warm_start, [], recipe.model, "tiers")
    if sorted(warm.tiers) != sorted(recipe.budget_tiers) or warm.budget_unit != recipe.budget_unit:
        raise UserError(f"warm_start {recipe.warm_start}: its tiers {warm.tiers} ({warm.budget_unit}) are not the "
                        f"recipe's {recipe.budget_tiers} ({recipe.budget_unit})")
    if recipe.num_prompts and warm.num_prompts < recipe.num_prompts:
        raise UserError(f"warm_start {recipe.warm_start}: {warm.num_prompts} problems, fewer than the recipe's "
                        f"num_prompts {recipe.num_prompts} (L(x) comes from its pool)")
    train_shortest(warm, folder, console=console)
    return replace(recipe, model=str(folder), base_lengths=str(folder / "pool"), warm_start=None)


def check_recipe(recipe) -> None:
    """A recipe's budget-tier fields: ``budget_tiers`` with a budget reward (and only with one), a known unit,
    tiers that fill whole rollouts, efforts among the tiers, and capped rollouts only where the engine can cap."""
    tiers, reward = list(recipe.budget_tiers), recipe.reward
    if reward in BUDGET_REWARDS and not tiers:
        raise UserError(f"reward {reward}: a budget reward needs budget_tiers (e.g. [1.0, 0.6, 0.4])")
    if not tiers:
        for name in ("budget_efforts", "base_lengths", "warm_start"):
            if getattr(recipe, name):
                raise UserError(f"{name}: set for a budget-tier recipe only (budget_tiers: [...])")
        return
    if reward not in BUDGET_REWARDS:
        raise UserError(f"budget_tiers: needs a budget reward ({', '.join(BUDGET_REWARDS)}), not {reward!r}")
    if recipe.budget_unit not in UNITS:
        raise UserError(f"budget_unit: unknown {recipe.budget_unit!r} (ratio or tokens)")
    if any(isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0 for t in tiers):
        raise UserError(f"budget_tiers: every tier must be a positive number, got {tiers}")
    if recipe.budget_unit == "tokens" and any(t != int(t) for t in tiers):
        raise UserError(f"budget_tiers: token budgets must be whole numbers, got {tiers}")
    if len(set(tiers)) != len(tiers):
        raise UserError(f"budget_tiers: a tier is named twice in {tiers}")
    if recipe.prompts_per_rollout % len(tiers):
        raise UserError(f"budget_tiers: prompts_per_rollout ({recipe.prompts_per_rollout}) must be a multiple of the "
                        f"number of tiers ({len(tiers)}), so that a rollout holds every tier of its problems")
    bad = {k: v for k, v in recipe.budget_efforts.items() if v not in tiers}
    if bad:
        raise UserError(f"budget_efforts: {bad} not among budget_tiers {tiers}; a named effort must be a trained tier")
    if recipe.base_samples < 1:
        raise UserError(f"base_samples must be a positive integer, got {recipe.base_samples}")
    if recipe.cap_rollouts and reward == "budget_cutoff" and (recipe.generation_engine != "fast" or recipe.use_vllm):
        raise UserError("cap_rollouts: rollouts stop at their budget with generation_engine fast only (no vLLM, no "
                        "generate); set cap_rollouts: false there (the cutoff reward is the same, the rollout runs "
                        "to the cap)")
    if recipe.warm_start and recipe.base_lengths:
        raise UserError("warm_start and base_lengths: a warm start measures L(x) itself (its pool); give one")
    for name in ("tier_beta", "paired_tiers"):
        if getattr(recipe, name):
            raise UserError(f"{name}: an option of alpha-conditioned tiers (alphas); budget tiers are always paired")
