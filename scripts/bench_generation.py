"""Batched generation throughput of a model on this machine against the CPU bound.

bound (tokens/s) = measured matmul FLOP/s / (2 x parameters)   -- a forward pass costs ~2 FLOP per parameter
per token. Also times where a decoding step goes (forward vs the rest of `generate`).

Usage: python scripts/bench_generation.py --model runs/demo/base [--batch-sizes 1,16,64,256] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def matmul_flops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main() -> None:
    from frugalthink.generation import HFGenerator
    from frugalthink.prompts import build_prompt
    from frugalthink.tasks import get_task

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", default="chain")
    ap.add_argument("--batch-sizes", default="1,16,64,256")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flops = matmul_flops()
    gen = HFGenerator(args.model, device="cpu", threads=args.threads)
    params = sum(p.numel() for p in gen.model.parameters())
    bound = flops / (2 * params)
    task = get_task(args.task)
    problems = task.load("test")
    prompts = [build_prompt(gen.tokenizer, task, p) for p in problems]
    print(f"matmul: {flops / 1e9:.1f} GFLOP/s ({args.threads} threads); params {params:,}; "
          f"bound {bound:,.0f} tokens/s")
    results = []
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        batch = (prompts * (bs // len(prompts) + 1))[:bs]
        gen.generate(batch[: min(bs, 4)], 8, 0.6, seed=0)  # warm-up
        t0 = time.perf_counter()
        gens = gen.generate(batch, args.max_new_tokens, 0.6, seed=1)
        dt = time.perf_counter() - t0
        toks = sum(g.tokens for g in gens)
        steps = max(g.tokens for g in gens)
        # one forward of the same shape as a mid-generation decode step, timed alone
        ids = gen.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = gen.model(**ids, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            t1 = time.perf_counter()
            for _ in range(10):
                gen.model(input_ids=nxt, past_key_values=past, use_cache=True)
            fwd = (time.perf_counter() - t1) / 10
        row = {"batch": bs, "tokens": toks, "seconds": round(dt, 3), "tokens_per_s": round(toks / dt),
               "fraction_of_bound": round(toks / dt / bound, 4), "decode_steps": steps,
               "ms_per_step": round(1000 * dt / steps, 2), "ms_forward_only": round(1000 * fwd, 2)}
        results.append(row)
        print(json.dumps(row))
    print(json.dumps({"matmul_gflops": round(flops / 1e9, 1), "params": params, "bound_tokens_per_s": round(bound)}))


if __name__ == "__main__":
    main()
