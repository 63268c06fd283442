"""The efficiency family: one RL run per alpha from the same base, all evaluated with the same settings.

Layout of a family directory::

    DIR/base_eval/            evaluation of the base model
    DIR/alpha-0.2/            RL run (model, checkpoints, train_log.jsonl, frugalthink_run.json)
    DIR/alpha-0.2/eval/       its evaluation
    DIR/family.json           what `report` and `pick` read

An alpha-conditioned family (`conditioned_sweep`) is one RL run, ``DIR/conditioned/``, evaluated once per alpha
(``DIR/conditioned/eval-alpha-A/``); its family.json has the same shape, so `report` and `pick` read it alike.

Finished parts are skipped and interrupted RL runs resumed, so re-running a sweep only does what is missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from frugalthink.eval.evaluate import EvalSettings, evaluate
from frugalthink.util.errors import UserError


def member_dir(out: Path, alpha: float, seed: int = 0) -> Path:
    return out / (f"alpha-{alpha:g}" + (f"-seed{seed}" if seed else ""))


def _member_record(alpha, seed, run_dir: Path, eval_dir: Path, summary: dict) -> dict:
    train_summary = json.loads((run_dir / "train_summary.json").read_text())
    return {
        "alpha": alpha,
        "seed": seed,
        "model": str(run_dir),
        "eval_dir": str(eval_dir),
        **metrics_of(summary),
        "train": train_summary,
    }


def metrics_of(summary: dict) -> dict:
    """The keys a family table needs, taken from an evaluation summary."""
    out = {
        "accuracy": summary["accuracy"],
        "accuracy_ci95": summary["accuracy_ci95"],
        "mean_tokens": summary["mean_tokens"],
        "median_tokens": summary["median_tokens"],
        "latency_p50_ms": summary.get("latency", {}).get("p50_ms"),
        "latency_p95_ms": summary.get("latency", {}).get("p95_ms"),
        "tokens_per_s": summary.get("throughput", {}).get("tokens_per_s"),
    }
    if "oracle_mean_tokens" in summary:
        out["oracle_mean_tokens"] = summary["oracle_mean_tokens"]
    if "by_level" in summary:
        out["by_level"] = summary["by_level"]
    return out


def sweep(recipe, alphas: list[float], out: str | Path, eval_settings: EvalSettings, seeds: list[int] = (0,),
          console: bool = True, parallel: int = 1) -> dict:
    """Train one member per (alpha, seed) from ``recipe.model`` and evaluate base and members alike.

    ``parallel > 1`` trains that many members at once in subprocesses with one thread each: on a small CPU model
    two single-thread runs finish in about the time of one two-thread run (the per-step work is too small to
    parallelise well), so a 2-core machine trains the family about twice as fast.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not all(0 <= a < 1 for a in alphas):
        raise UserError(f"--alphas must lie in [0, 1): {alphas}")
    family = _family_with_base(recipe, out, eval_settings, console)
    jobs = [(alpha, seed) for seed in seeds for alpha in alphas]
    _train_members(recipe, jobs, out, parallel, console)
    for alpha, seed in jobs:
        run_dir = member_dir(out, alpha, seed)
        summary = evaluate(replace(eval_settings, model=str(run_dir)), run_dir / "eval", quiet=not console)
        family["members"].append(_member_record(alpha, seed, run_dir, run_dir / "eval", summary))
        (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family


def _family_with_base(recipe, out: Path, eval_settings: EvalSettings, console: bool) -> dict:
    """A family record with its base evaluated (``out/base_eval``) and no members yet."""
    base_summary = evaluate(replace(eval_settings, model=recipe.model), out / "base_eval", quiet=not console)
    return {
        "task": eval_settings.task,
        "eval_settings": {k: v for k, v in asdict(eval_settings).items() if k not in ("model", "alpha")},
        "recipe": asdict(recipe),
        "base": {"model": recipe.model, "eval_dir": str(out / "base_eval"), **metrics_of(base_summary)},
        "members": [],
    }


def conditioned_sweep(recipe, train_alphas: list[float], eval_alphas: list[float], out: str | Path,
                      eval_settings: EvalSettings, console: bool = True) -> dict:
    """Train one alpha-conditioned model on ``train_alphas`` and evaluate it at each of ``eval_alphas`` (an alpha
    it never saw lands where the control line puts it, or not: that is measured, not assumed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = replace(recipe, alphas=list(train_alphas))
    recipe.validate()
    family = {**_family_with_base(recipe, out, eval_settings, console), "conditioned": True}
    run_dir = out / "conditioned"
    saved = run_dir / "frugalthink_run.json"
    if saved.exists():
        old = json.loads(saved.read_text()).get("config", {}).get("alphas")
        if old != list(train_alphas):
            raise UserError(f"{run_dir}: a conditioned model trained on alphas {old}, not {list(train_alphas)}; "
                            "use another --out")
    train_runs([(recipe, run_dir, f"[alphas={','.join(f'{a:g}' for a in train_alphas)}]")], 1, console)
    for alpha in eval_alphas:
        eval_dir = run_dir / f"eval-alpha-{alpha:g}"
        summary = evaluate(replace(eval_settings, model=str(run_dir), alpha=alpha), eval_dir, quiet=not console)
        member = _member_record(alpha, recipe.seed, run_dir, eval_dir, summary)
        family["members"].append({**member, "seen_in_training": alpha in train_alphas})
        (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family


def _train_members(recipe, jobs, out: Path, parallel: int, console: bool) -> None:
    runs = [(replace(recipe, alpha=alpha, seed=seed), member_dir(out, alpha, seed), f"[alpha={alpha:g} seed={seed}]")
            for alpha, seed in jobs]
    train_runs(runs, parallel, console)


def train_runs(runs: list[tuple], parallel: int = 1, console: bool = True) -> None:
    """Train ``(recipe, run_dir, tag)`` runs, skipping finished ones and resuming interrupted ones.

    ``parallel > 1`` runs that many at once, each a ``frugalthink train`` subprocess with one thread.
    """
    from frugalthink.rl.train import train

    if parallel <= 1:
        for recipe, run_dir, tag in runs:
            if console:
                print(f"== training {tag} -> {run_dir}", flush=True)
            train(recipe, run_dir, resume=True, console=console)
        return
    import subprocess
    import sys
    import threading
    import time

    import yaml

    from frugalthink.config import write_run_metadata
    from frugalthink.rl.train import METADATA, finished_summary
    from frugalthink.util.outdir import claim

    def launch(recipe, run_dir, tag):
        # Mark the folder as a training run of ours before the recipe copy and the log land in it; a run's own
        # record is kept, for `train` to check the recipe against it.
        claim(run_dir, METADATA)
        if not (Path(run_dir) / METADATA).exists():
            write_run_metadata(run_dir, recipe, name=METADATA)
        recipe_path = run_dir / "recipe.yaml"
        recipe_path.write_text(yaml.safe_dump(asdict(replace(recipe, threads=1))))
        cmd = [sys.executable, "-m", "frugalthink.cli", "train", "--recipe", str(recipe_path), "--out", str(run_dir),
               "--resume"]
        log = (run_dir / "train_stderr.log").open("a")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)

        def pump():
            for line in proc.stdout:
                if console:
                    print(f"{tag} {line.rstrip()}", flush=True)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        return proc, thread, tag, run_dir, time.perf_counter()

    # each subprocess is one process (WORLD_SIZE 1): its run is checked as `train` there will check it
    pending = [r for r in runs if finished_summary(Path(r[1]), replace(r[0], num_processes=1), resume=True) is None]
    running = []
    failed = []
    while pending or running:
        while pending and len(running) < parallel:
            running.append(launch(*pending.pop(0)))
            if console:
                print(f"== training {running[-1][2]} -> {running[-1][3]}", flush=True)
        for job in list(running):
            proc, thread, tag, run_dir, t0 = job
            if proc.poll() is not None:
                thread.join(timeout=5)
                running.remove(job)
                if proc.returncode != 0:
                    failed.append(f"{tag} exit {proc.returncode}, see {run_dir / 'train_stderr.log'}")
                elif console:
                    print(f"== finished {tag} in {time.perf_counter() - t0:.0f}s", flush=True)
        time.sleep(0.5)
    if failed:
        raise UserError("training failed: " + "; ".join(failed))


def pick(fam: dict, min_accuracy: float | None = None, max_tokens: float | None = None,
         max_latency_ms: float | None = None) -> dict | None:
    """The cheapest member (fewest mean tokens; the base counts as a member) meeting every given constraint."""
    if min_accuracy is None and max_tokens is None and max_latency_ms is None:
        raise UserError("give a constraint: --min-accuracy, --max-tokens or --max-latency-ms")
    from frugalthink.report.family import member_name

    candidates = [{"alpha": None, "name": "base", **fam["base"]}] + [
        {"name": member_name(m), **m} for m in fam["members"]
    ]
    ok = []
    for c in candidates:
        if min_accuracy is not None and c["accuracy"] < min_accuracy:
            continue
        if max_tokens is not None and c["mean_tokens"] > max_tokens:
            continue
        if max_latency_ms is not None and (c.get("latency_p50_ms") is None or c["latency_p50_ms"] > max_latency_ms):
            continue
        ok.append(c)
    if not ok:
        return None
    key = (lambda c: c["latency_p50_ms"]) if max_latency_ms is not None else (lambda c: c["mean_tokens"])
    return min(ok, key=key)
