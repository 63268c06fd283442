"""Retrain and evaluate chosen methods of the side-by-side comparison, into the folders `frugalthink sidebyside`
uses (so a later `make compare` reuses them), and print the paired tests against one of ours.

    python dev/rerun_peers.py --demo runs/demo-tally --out runs/compare-tally \
        --runs laser:0,laser_d:0,laser_de:0,dler:0,drpo:0,shorter_better:0,dler:1,laser:1,shorter_better:1,ours-0.2:1

Each run is ``PEER:SEED`` (the peer's recipe at the demo's settings, `studies.sidebyside.peer_recipe`) or
``ours-ALPHA:SEED`` (the demo's recipe at that alpha and training seed). Two runs train at a time, one thread each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from frugalthink.eval.evaluate import evaluate
from frugalthink.studies import demo as demo_cmd
from frugalthink.studies.family import member_dir, train_runs
from frugalthink.studies.sidebyside import demo_task, peer_recipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", required=True, help="PEER:SEED or ours-ALPHA:SEED, comma-separated")
    ap.add_argument("--against", default=None, help="the eval folder the paired tests start from (default: the "
                    "demo's alpha 0.2 member)")
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args(argv)
    demo, out = Path(args.demo), Path(args.out)
    task = demo_task(demo, None)
    _, rl = demo_cmd.demo_recipes(demo, False, task)
    settings = demo_cmd.demo_eval_settings(demo, rl, False)
    jobs = []
    for spec in args.runs.split(","):
        name, seed = spec.split(":")
        seed = int(seed)
        if name.startswith("ours-"):
            alpha = float(name.removeprefix("ours-"))
            jobs.append((replace(rl, alpha=alpha, seed=seed), member_dir(out / "ours", alpha, seed),
                         f"[alpha={alpha:g} seed={seed}]"))
        else:
            run_dir = out / (name if not seed else f"{name}-seed{seed}")
            jobs.append((peer_recipe(rl, name, seed), run_dir, f"[{run_dir.name}]"))
    train_runs(jobs, parallel=args.parallel, console=True)
    evals = []
    for _, run_dir, label in jobs:
        summary = evaluate(replace(settings, model=str(run_dir)), run_dir / "eval", quiet=True)
        print(f"{label}: accuracy {summary['accuracy']:.3f}, mean tokens {summary['mean_tokens']:.1f}", flush=True)
        evals.append(str(run_dir / "eval"))
    against = args.against or str(member_dir(demo, 0.2, 0) / "eval")
    return subprocess.call([sys.executable, "-m", "frugalthink.cli", "compare", against, *evals])


if __name__ == "__main__":
    sys.exit(main())
