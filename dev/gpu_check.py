"""The GPU check of the R1 path: two optimizer steps of a tiny random Qwen2 with R1-Distill's tokenizer setup,
bf16 on CUDA, the official update rule (driven by DAPO's length shaping: a random model is never right), the official
prompt, then an HF-backend evaluation. Prints one JSON object.

Usage (on a GPU machine; on CPU it runs the same path in fp32, for a dry run):
    python dev/gpu_check.py --out /tmp/gpu_check [--device cuda]

It needs ../shared/fixtures (R1's tokenizer_config.json) and reads GSM8K prompts from ../shared/data when present,
else the shipped GSM8K test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="scratch folder (created; must be new or empty)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    args = ap.parse_args()

    import torch
    from fixture_tokenizers import r1_tokenizer_dir, save_tiny_qwen2

    from frugalthink.eval.evaluate import EvalSettings, evaluate
    from frugalthink.generation.backends import HFGenerator
    from frugalthink.rl.train import load_recipe, train
    from frugalthink.util.outdir import claim

    cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    out = claim(args.out, "gpu_check.json")
    model_dir = save_tiny_qwen2(r1_tokenizer_dir(out / "tokenizer"), out / "model")
    shared = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
    data = shared if shared.exists() else ROOT / "src" / "frugalthink" / "data" / "gsm8k" / "test.jsonl"
    recipe = load_recipe("r1-distill-qwen-1.5b/rl", overrides=[
        f"model={model_dir}", f"task=jsonl:{data}", "task_options={problem_field: question, answer_field: answer, "
        "message: '{instruction} Question: {question}', number_fallback: true}", "num_prompts=8",
        "prompts_per_rollout=4", "gradient_accumulation_steps=1", "num_processes=1", "rollouts=1",
        "max_completion_length=64", "use_vllm=false", "gradient_checkpointing=false", f"bf16={str(cuda).lower()}",
        "save_every=1", "warmup_steps=0",
        # A random model answers nothing right, so the efficiency reward would be 0 everywhere and the update empty;
        # DAPO's length-dependent shaping gives the official update something to do.
        "reward=dapo"])
    t0 = time.perf_counter()
    summary = train(recipe, out / "run", console=True)
    train_s = time.perf_counter() - t0
    log = [json.loads(x) for x in (out / "run" / "train_log.jsonl").read_text().splitlines()]
    gen = HFGenerator(str(out / "run"), device="cuda" if cuda else "cpu", dtype="bf16" if cuda else "fp32")
    ev = evaluate(EvalSettings(model=str(out / "run"), task="gsm8k", limit=8, max_new_tokens=64, latency_requests=2,
                               task_options={"message": "{instruction} Question: {question}"}),
                  out / "eval", generator=gen, quiet=True)
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__, "dtype": "bf16" if cuda else "fp32", "update_rule": recipe.update_rule,
        "train_wall_s": round(train_s, 1), "s_per_rollout": summary["s_per_rollout"],
        "steps": [{k: r.get(k) for k in ("step", "loss", "kl", "clip_ratio", "entropy", "tokens_mean",
                                        "truncated_frac")} for r in log],
        "eval": {k: ev.get(k) for k in ("accuracy", "mean_tokens", "truncation_rate", "reasons")},
        "latency_p50_ms": ev.get("latency", {}).get("p50_ms"),
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
