"""`frugalthink eval`: accuracy, completion tokens and latency, one record per (problem, sample), resumable.

Work is a fixed list of (problem, sample) items cut into fixed batches; batch ``b`` samples with seed
``seed * 1_000_003 + b``, so a run, an interrupted run and its resumption produce the same records. Each finished
batch is appended (and fsynced) to ``records.jsonl``; a kill loses at most the batch in flight.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from frugalthink.eval.summary import format_summary, summarize
from frugalthink.generation.backends import top_p_kwargs
from frugalthink.util.errors import UserError
from frugalthink.util.jsonl import append_jsonl, read_jsonl_tolerant
from frugalthink.util.outdir import claim
from frugalthink.util.progress import progress_bar

# Settings that define what the records mean: a resume with different values would mix two experiments.
# ``limit`` and ``samples`` may grow (an evaluation can be extended); everything else must match.
_IDENTITY = ("model", "task", "split", "temperature", "top_p", "max_new_tokens", "seed", "batch_size",
             "task_options", "budget", "length_target", "backend", "alpha", "ratio")
_GROWS = ("limit", "samples")
_BEFORE = {"backend": "hf", "top_p": 1.0, "ratio": None}  # the value of a setting in folders written before the setting existed

# Absolute token budgets at which a math benchmark's accuracy is read off its records (those up to the generation
# cap): the 2k-32k range the length-reduction papers report.
MATH_BUDGETS = (2048, 4096, 8192, 16384, 32768)


@dataclass
class EvalSettings:
    model: str
    task: str
    split: str = "test"
    samples: int | None = None
    temperature: float = 0.6
    max_new_tokens: int | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int = 64
    latency_requests: int = 32
    backend: str = "fast"
    task_options: dict | None = None
    budget: int | None = None  # generation cutoff: at most this many tokens, answer forced (BudgetForcedGenerator)
    length_target: int | None = None  # token budget written into the prompt (L1-trained models)
    alpha: float | None = None  # control line of an alpha-conditioned model (`frugalthink.tasks.conditioning`)
    ratio: float | None = None  # budget ratio of a budget-tier model (`frugalthink.rl.budgets`)
    top_p: float = 1.0  # nucleus sampling (1: none); `frugalthink.generation.decoding.nucleus`
    budgets: list[int] | None = None  # absolute token budgets of the summary's accuracy_at_tokens (default: math)

    def resolved(self) -> EvalSettings:
        from frugalthink.tasks import BENCHMARKS, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SAMPLES, MATH_MAX_NEW_TOKENS

        base = self.task.split(":")[0]
        for name in ("samples", "max_new_tokens", "limit", "budget", "length_target", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not isinstance(self.latency_requests, int) or self.latency_requests < 0:
            raise UserError(f"--latency-requests must be an integer >= 0, got {self.latency_requests!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UserError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be a number in (0, 1], got {self.top_p!r}")
        samples = self.samples if self.samples is not None else DEFAULT_SAMPLES.get(base, 1)
        max_new = (self.max_new_tokens if self.max_new_tokens is not None
                   else DEFAULT_MAX_NEW_TOKENS.get(base, MATH_MAX_NEW_TOKENS))
        budgets = self.budgets
        if budgets is not None:
            if isinstance(budgets, (str, bytes)) or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                                                           for b in budgets):
                raise UserError(f"--budgets must be positive integers, got {budgets!r}")
            over = [b for b in budgets if b > max_new]
            if over:
                raise UserError(f"--budgets {', '.join(map(str, over))}: above --max-new-tokens {max_new}; accuracy "
                                "at a budget past the generation cap is not observed (raise the cap or drop it)")
            budgets = sorted(set(budgets))
        elif base in BENCHMARKS:
            budgets = [b for b in MATH_BUDGETS if b <= max_new]
        return EvalSettings(**{**asdict(self), "samples": samples, "max_new_tokens": max_new, "top_p": float(self.top_p),
                               "budgets": budgets})


def check_eval_section(recipe) -> None:
    """A recipe's ``eval:`` section: how a trained model is evaluated (tasks with their samples per problem,
    temperature, top_p, max_new_tokens, the absolute token budgets of the summary, the prompt's message)."""
    from frugalthink.tasks import BENCHMARKS, EMBEDDED

    known = {"tasks", "temperature", "top_p", "max_new_tokens", "budgets", "message"}
    unknown = set(recipe.eval) - known
    if unknown:
        raise UserError(f"eval: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    top_p = recipe.eval.get("top_p", 1.0)  # every backend samples from the nucleus (frugalthink.generation.backends)
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise UserError(f"eval.top_p: must be a number in (0, 1], got {top_p!r}")
    budgets = recipe.eval.get("budgets", [])
    if not isinstance(budgets, list) or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                                                for b in budgets):
        raise UserError(f"eval.budgets: expected a list of positive token counts, got {budgets!r}")
    cap = recipe.eval.get("max_new_tokens")
    if isinstance(cap, int) and any(b > cap for b in budgets):
        raise UserError(f"eval.budgets: {budgets} reach past eval.max_new_tokens {cap}")
    tasks = recipe.eval.get("tasks", {})
    if not isinstance(tasks, dict):
        raise UserError(f"eval.tasks: expected a mapping task -> samples, got {tasks!r}")
    for name, n in tasks.items():
        if name not in BENCHMARKS + EMBEDDED:
            raise UserError(f"eval.tasks: unknown task {name!r} (one of {', '.join(BENCHMARKS + EMBEDDED)})")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"eval.tasks.{name}: samples must be a positive integer, got {n!r}")


def _check_resume(out: Path, settings: EvalSettings, has_records: bool) -> None:
    """Refuse to mix two experiments in one folder. A folder without records (a run that failed before its first
    one) takes the new settings; ``limit`` and ``samples`` may grow, which extends the evaluation."""
    cfg_path = out / "eval_config.json"
    if not cfg_path.exists() or not has_records:
        return
    try:
        old = json.loads(cfg_path.read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        raise UserError(f"{cfg_path}: unreadable; use another --out") from None
    new = asdict(settings)
    for key in _IDENTITY:
        before = old.get(key, _BEFORE.get(key))
        if before != new[key]:
            raise UserError(f"{out}: already holds an evaluation with {key}={before!r}, not {new[key]!r}; "
                            "use another --out")
    for key in _GROWS:
        before, now = old.get(key), new[key]
        if before != now and (now is not None and (before is None or now < before)):
            raise UserError(f"{out}: already holds an evaluation with {key}={before!r}; {key} can only grow "
                            f"(extend the evaluation), not become {now!r}; use another --out")


def load_problems(settings: EvalSettings, tokenizer, task=None):
    from frugalthink.tasks import get_task

    task = task or get_task(settings.task, **(settings.task_options or {}))
    if hasattr(task, "with_token_counter"):
        from frugalthink.organisms.tiny import count_tokens

        task.with_token_counter(lambda text: count_tokens(tokenizer, text))
    problems = task.load(settings.split)
    if settings.limit:
        problems = problems[: settings.limit]
    return task, problems


def evaluate(settings: EvalSettings, out: str | Path, generator=None, quiet: bool = False) -> dict:
    """Run (or resume) an evaluation into ``out``; returns the summary (also written to summary.json)."""
    from frugalthink.config import write_run_metadata
    from frugalthink.generation.backends import make_generator
    from frugalthink.tasks.prompts import build_prompt, opens_thinking

    settings = settings.resolved()
    out = claim(out, "eval_config.json")
    records_path, latency_path = out / "records.jsonl", out / "latency.jsonl"
    done = {(r["problem_id"], r["sample"]): r.get("batch") for r in read_jsonl_tolerant(records_path)}
    _check_resume(out, settings, has_records=bool(done))
    if not (out / "eval_config.json").exists():
        write_run_metadata(out, settings, name="eval_config.json")
    from frugalthink.tasks import get_task

    task = get_task(settings.task, **(settings.task_options or {}))  # bad task options fail before the model loads
    task.check_split(settings.split)  # and so does a split the task lacks
    gen = generator or make_generator(settings.backend, settings.model)
    task, problems = load_problems(settings, gen.tokenizer, task)
    if settings.budget:
        from frugalthink.generation.backends import BudgetForcedGenerator

        gen = BudgetForcedGenerator(gen, settings.budget, task.force_answer_text, task.answer_tokens)
    prompts = [build_prompt(gen.tokenizer, task, p, length_target=settings.length_target, alpha=settings.alpha,
                            ratio=settings.ratio) for p in problems]
    _check_context(gen, problems, prompts, settings.max_new_tokens)

    items = [(i, s) for i in range(len(problems)) for s in range(settings.samples)]
    batches = [items[k : k + settings.batch_size] for k in range(0, len(items), settings.batch_size)]
    todo = [(b, batch, _to_generate(batch, b, done, problems)) for b, batch in enumerate(batches)]
    todo = [(b, batch, gen_items) for b, batch, gen_items in todo if gen_items]
    config_current = False
    with progress_bar(f"eval {Path(settings.model).name} on {settings.task}", total=len(items)) as bar:
        finished = len(done)
        bar(finished)
        for b, _, batch in todo:
            t0 = time.perf_counter()
            gens = gen.generate([prompts[i] for i, _ in batch], settings.max_new_tokens, settings.temperature,
                                seed=settings.seed * 1_000_003 + b, **top_p_kwargs(settings.top_p))
            batch_ms = 1000 * (time.perf_counter() - t0)
            batch_problems = [problems[i] for i, _ in batch]
            grades = task.grade([g.text for g in gens], batch_problems, [g.truncated for g in gens],
                                thinking_open=[opens_thinking(prompts[i]) for i, _ in batch])
            rows = []
            for (i, s), g, res in zip(batch, gens, grades, strict=True):
                p = problems[i]
                if (p.id, s) in done:
                    continue
                rows.append({"problem_id": p.id, "sample": s, "level": p.level, "completion": g.text,
                             "tokens": g.tokens, "truncated": g.truncated, "correct": res.correct,
                             "reason": res.reason, "extracted": res.extracted, "gold": p.answer,
                             "oracle_tokens": p.oracle_tokens, "batch": b, "batch_ms": round(batch_ms, 2)})
            append_jsonl(records_path, rows)
            if not config_current:  # the settings on disk change only once records under them exist
                write_run_metadata(out, settings, name="eval_config.json")
                config_current = True
            finished += len(rows)
            bar(finished, f"acc {sum(r['correct'] for r in rows) / max(1, len(rows)):.2f}")

    _measure_latency(settings, gen, problems, prompts, latency_path, quiet)
    summary = summarize(read_jsonl_tolerant(records_path), read_jsonl_tolerant(latency_path), seed=settings.seed,
                        cap=settings.max_new_tokens, budgets=settings.budgets)
    summary["settings"] = asdict(settings)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not quiet:
        print(format_summary(summary, title=f"== {settings.model} on {settings.task} ({out})"))
    return summary


def _to_generate(batch, b: int, done: dict, problems) -> list:
    """The items of batch ``b`` to generate. A batch whose done items are a prefix written as this same batch (a
    kill in the middle of its write) is generated whole again, so its records equal an uninterrupted run's; in a
    batch laid out anew by an extension (``--samples`` grew), only the missing items are generated."""
    flags = [(problems[i].id, s) in done for i, s in batch]
    k = sum(flags)
    if k == len(batch):
        return []
    same_batch = all(flags[:k]) and all(done[(problems[i].id, s)] == b for i, s in batch[:k])
    return batch if k == 0 or same_batch else [item for item, f in zip(batch, flags, strict=True) if not f]


def _check_context(gen, problems, prompts, max_new_tokens: int) -> None:
    """A prompt that cannot fit the model's context with its completion budget is an error naming the problem,
    not a generation that runs past the positions the model knows (or hangs on a huge input)."""
    context = getattr(gen, "context_length", None)
    if not context:
        return
    from frugalthink.tasks.prompts import encode_prompt

    for p, text in zip(problems, prompts, strict=True):
        if len(text) > 50 * context:  # surely too long: refuse before tokenizing megabytes
            raise UserError(f"problem {p.id}: prompt of {len(text):,} characters cannot fit the model's "
                            f"{context}-token context")
        n = len(encode_prompt(gen.tokenizer, text))
        if n + max_new_tokens > context:
            raise UserError(f"problem {p.id}: prompt of {n} tokens + --max-new-tokens {max_new_tokens} exceeds the "
                            f"model's context of {context} tokens; lower --max-new-tokens or shorten the problem")


def _measure_latency(settings, gen, problems, prompts, path: Path, quiet: bool) -> None:
    """Per-request latency: a seeded subset of problems, one request at a time, after one warm-up request."""
    n = min(settings.latency_requests, len(problems))
    if n <= 0:
        return
    chosen = sorted(random.Random(settings.seed).sample(range(len(problems)), n))
    done = {r["problem_id"] for r in read_jsonl_tolerant(path)}
    todo = [i for i in chosen if problems[i].id not in done]
    if not todo:
        return
    nucleus = top_p_kwargs(settings.top_p)
    gen.timed(prompts[todo[0]], settings.max_new_tokens, settings.temperature, seed=settings.seed, **nucleus)  # warm-up
    with progress_bar("latency (one request at a time)", total=len(todo)) as bar:
        for k, i in enumerate(todo):
            g, ms = gen.timed(prompts[i], settings.max_new_tokens, settings.temperature, seed=settings.seed + i,
                              **nucleus)
            append_jsonl(path, [{"problem_id": problems[i].id, "sample": 0, "tokens": g.tokens,
                                 "truncated": g.truncated, "latency_ms": round(ms, 3)}])
            bar(k + 1)


def prompt_control(model: str, alpha: float | None, effort: str | None, ratio: float | None,
                   length_target: int | None) -> dict:
    """``--alpha`` / ``--budget-ratio`` / ``--effort`` / ``--length-target`` -> what the prompts carry (``alpha``,
    ``ratio``, ``length_target``): an alpha-conditioned model takes an alpha, a budget-tier model a ratio (or, with
    token tiers, a length target); ``--effort`` names a tier of either."""
    from frugalthink.tasks.conditioning import beyond_trained_ratio, budget_tiers, effort_tier, run_config

    given = [f for f, v in (("--alpha", alpha), ("--effort", effort), ("--budget-ratio", ratio),
                            ("--length-target", length_target)) if v is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)}: give one of them")
    out = {"alpha": None, "ratio": None, "length_target": length_target}
    tiers = budget_tiers(model) if (effort is not None or ratio is not None) else None
    if effort is not None and tiers is not None:
        unit, tier = effort_tier(model, effort)
        if unit == "ratio":
            return {**out, "ratio": tier}
        cfg = run_config(model) or {}
        cap = int(cfg.get("max_completion_length") or cfg.get("max_new_tokens") or 0)
        return {**out, "length_target": None if cap and tier >= cap else int(tier)}
    if ratio is not None:
        if tiers is None or tiers[1] != "ratio":
            raise UserError(f"--budget-ratio: {model} is not a budget-tier model trained on ratios (a recipe's "
                            "'budget_tiers' with budget_unit ratio)")
        if ratio <= 0:
            raise UserError(f"--budget-ratio must be positive, got {ratio:g}")
        notice = beyond_trained_ratio(ratio, tiers[0])
        if notice:
            print(f"frugalthink eval: note: --budget-ratio: {notice}", file=sys.stderr)
        return {**out, "ratio": ratio}
    return {**out, "alpha": conditioning_alpha(model, alpha, effort)}


def conditioning_alpha(model: str, alpha: float | None, effort: str | None) -> float | None:
    """``--alpha`` / ``--effort`` -> the alpha written into the prompts; only for an alpha-conditioned model."""
    from frugalthink.tasks.conditioning import beyond_trained, effort_alpha, trained_alphas

    if alpha is not None and effort is not None:
        raise UserError("--alpha and --effort: give one of them")
    if effort is not None:
        return effort_alpha(model, effort)
    if alpha is None:
        return None
    if not 0 <= alpha < 1:
        raise UserError(f"--alpha must lie in [0, 1), got {alpha:g}")
    trained = trained_alphas(model)
    if not trained:
        raise UserError(f"--alpha: {model} is not an alpha-conditioned model (trained with a recipe's 'alphas'); "
                        "a model trained for one alpha takes no --alpha")
    notice = beyond_trained(alpha, trained)
    if notice:
        print(f"frugalthink eval: note: --alpha: {notice}", file=sys.stderr)
    return alpha


def run(args) -> int:
    from frugalthink.config import parse_options

    settings = EvalSettings(
        model=args.model, task=args.task, split=args.split, samples=args.samples, temperature=args.temperature,
        max_new_tokens=args.max_new_tokens, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
        latency_requests=args.latency_requests, backend=args.backend, budget=args.budget,
        task_options=parse_options(args.task_option, "--task-option") or None, top_p=args.top_p,
        budgets=parse_budgets(args.budgets),
        **prompt_control(args.model, args.alpha, args.effort, args.budget_ratio, args.length_target),
    )
    if args.backend in ("fast", "hf") and not Path(args.model).exists() and "/" not in args.model:
        raise UserError(f"--model {args.model}: no such directory")
    if args.max_new_tokens is None:
        settings = fit_to_context(settings)
    evaluate(settings, args.out)
    return 0


def parse_budgets(text: str | None) -> list[int] | None:
    """``--budgets 2048,4096`` -> ``[2048, 4096]``; None when not given (the task's default)."""
    if text is None:
        return None
    try:
        budgets = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--budgets {text!r}: expected token counts separated by commas, e.g. 2048,4096") from None
    if not budgets or min(budgets) < 1:
        raise UserError(f"--budgets {text!r}: expected positive token counts separated by commas, e.g. 2048,4096")
    return budgets


CONTEXT_MARGIN = 1024  # prompt tokens left free when the default completion budget is cut to a short context


def fit_to_context(settings: EvalSettings) -> EvalSettings:
    """The task's default completion budget (32,768 on the math benchmarks) when it reaches past the model's context:
    cut to the context less room for the prompt (`CONTEXT_MARGIN`, at most a quarter of the context), with a note.
    A default that fits is kept (a prompt too long for it is `_check_context`'s error); an explicit
    ``--max-new-tokens`` is never changed."""
    from frugalthink.generation.model_files import context_length

    resolved = settings.resolved()
    context = context_length(settings.model)
    if not context or resolved.max_new_tokens < context:
        return settings
    fitted = context - min(CONTEXT_MARGIN, context // 4)
    print(f"frugalthink eval: note: the default --max-new-tokens for {settings.task} ({resolved.max_new_tokens}) "
          f"exceeds {Path(settings.model).name}'s {context}-token context: using {fitted}", file=sys.stderr)
    return replace(settings, max_new_tokens=fitted)
