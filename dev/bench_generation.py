"""Both generation engines side by side on one model: throughput, time per decode step, share of the compute
bound, single-request latency, and whether they produce the same samples.

bound (tokens/s) = measured matmul FLOP/s / (2 x parameters)   -- a forward pass costs ~2 FLOP per parameter
per token (attention's reads of the KV cache are not in it, so at large batches the bound is optimistic).

ms_per_step = a whole call / its steps (prefill included); prefill_ms = a call for one token; decode_ms_per_step =
(whole call - prefill) / (steps - 1). On a machine shared with other jobs, run with OMP_WAIT_POLICY=PASSIVE or
--threads 1: with OpenMP's default spin-waiting, two threads slow down ~10x when another job holds a core
(docs/evaluation.md); the header records the setting.

Same samples: greedy decoding of every test problem by both engines, compared token for token; sampled decoding
(T = 0.6, the evaluation setting) of every test problem by both engines, graded by the task's grader: accuracy with
McNemar's exact test, mean tokens with a paired bootstrap.

Usage: python dev/bench_generation.py --model runs/demo-chain/base [--batch-sizes 1,16,64,128,256] [--repeats 3]
       [--device cuda --dtype bf16] [--json bench.json]
       python dev/bench_generation.py --random-qwen2 DIR ...   # builds a random Qwen2 with Qwen2.5-0.5B's body
                                                                   # (24 x 896, GQA 14/2) into DIR and uses it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def matmul_flops(device: str, dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(gen, rows: list[str], max_new: int, seed: int):
    gen.sync()
    t0 = time.perf_counter()
    outs = gen.generate(rows, max_new, 0.6, seed=seed)
    gen.sync()
    return outs, time.perf_counter() - t0


def throughput(gen, prompts: list[str], batch: int, max_new: int, repeats: int, bound: float) -> dict:
    """Tokens/s of whole calls (prefill included, as an evaluation sees them), and the call split into the prefill
    (a call for one token) and the decode steps after it."""
    rows = (prompts * (batch // len(prompts) + 1))[:batch]
    gen.generate(rows[: min(batch, 4)], 8, 0.6, seed=0)  # warm-up
    runs = []
    for r in range(repeats):
        _, prefill = _timed(gen, rows, 1, 1 + r)
        outs, dt = _timed(gen, rows, max_new, 1 + r)
        tokens, steps = sum(g.tokens for g in outs), max(g.tokens for g in outs)
        runs.append((tokens / dt, 1000 * dt / steps, 1000 * prefill, 1000 * (dt - prefill) / max(1, steps - 1)))
    tps = sorted(x[0] for x in runs)
    return {"engine": gen.name, "batch": batch, "tokens_per_s": round(statistics.median(tps)),
            "tokens_per_s_range": [round(tps[0]), round(tps[-1])],
            "ms_per_step": round(statistics.median(x[1] for x in runs), 3),
            "prefill_ms": round(statistics.median(x[2] for x in runs), 1),
            "decode_ms_per_step": round(statistics.median(x[3] for x in runs), 3),
            "fraction_of_bound": round(statistics.median(tps) / bound, 4)}


def same_samples(engines: dict, task, problems, prompts, max_new: int, batch: int) -> dict:
    from frugalthink.tasks.prompts import opens_thinking
    from frugalthink.util.stats import mcnemar_exact, paired_bootstrap

    def run(gen, temperature: float, seed: int):
        outs = []
        for k in range(0, len(prompts), batch):
            outs += gen.generate(prompts[k : k + batch], max_new, temperature, seed=seed + k)
        return outs

    names = list(engines)
    greedy = {n: run(g, 0.0, 0) for n, g in engines.items()}
    identical = sum(a == b for a, b in zip(greedy[names[0]], greedy[names[1]], strict=True))
    sampled, correct = {}, {}
    for n, g in engines.items():
        sampled[n] = run(g, 0.6, 1000)
        grades = task.grade([o.text for o in sampled[n]], problems, [o.truncated for o in sampled[n]],
                            thinking_open=[opens_thinking(p) for p in prompts])
        correct[n] = [bool(x.correct) for x in grades]
    a, b = names
    boot = paired_bootstrap([o.tokens for o in sampled[a]], [o.tokens for o in sampled[b]])
    return {
        "problems": len(problems),
        "greedy_identical": f"{identical}/{len(problems)}",
        "sampled": {n: {"accuracy": round(sum(correct[n]) / len(correct[n]), 4),
                        "mean_tokens": round(statistics.mean(o.tokens for o in sampled[n]), 2)} for n in names},
        "accuracy_mcnemar_p": round(mcnemar_exact(correct[a], correct[b])["p"], 4),
        f"tokens_{b}_minus_{a}": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in boot.items()},
    }


def latency(gen, prompts: list[str], max_new: int, requests: int) -> dict:
    from frugalthink.generation.backends import time_one_request

    time_one_request(gen, prompts[0], max_new, 0.6, seed=0)  # warm-up
    rows = [time_one_request(gen, prompts[i % len(prompts)], max_new, 0.6, seed=i) for i in range(requests)]
    ms = sorted(dt for _, dt in rows)
    return {"engine": gen.name, "requests": requests, "p50_ms": round(statistics.median(ms), 2),
            "ms_per_token": round(sum(ms) / max(1, sum(g.tokens for g, _ in rows)), 3)}


def random_qwen2(path: str) -> str:
    """A random Qwen2 with the body of Qwen2.5-0.5B (24 layers, hidden 896, 14 query / 2 key-value heads, MLP 4864)
    and the embedded character tokenizer (so its vocabulary, and the lm_head, are tiny: ~360M parameters)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from frugalthink.organisms.tiny import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def main() -> None:
    from frugalthink.generation.backends import make_generator
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model")
    src.add_argument("--random-qwen2", metavar="DIR", help="build a random 0.5B-bodied Qwen2 into DIR and use it")
    ap.add_argument("--task", default="chain")
    ap.add_argument("--batch-sizes", default="1,16,64,128,256")
    ap.add_argument("--engines", default="hf,fast", help="two backends to compare (default hf,fast)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per cell; the median is reported")
    ap.add_argument("--latency-requests", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default: bf16 on cuda, fp32 on cpu")
    ap.add_argument("--skip-samples", action="store_true", help="throughput only, no same-samples check")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.random_qwen2:
        args.model = random_qwen2(args.random_qwen2)
    dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    names = args.engines.split(",")
    if len(names) != 2:
        raise SystemExit("--engines: give two backends, e.g. hf,fast")
    engines = {n: make_generator(n, args.model, device=args.device, dtype=dtype, threads=args.threads) for n in names}
    first = engines[names[0]]
    params = sum(p.numel() for p in first.model.parameters())
    flops = matmul_flops(args.device, torch_dtype)
    bound = flops / (2 * params)
    task = get_task(args.task)
    problems = task.load("test")
    prompts = [build_prompt(first.tokenizer, task, p) for p in problems]
    head = {"model": args.model, "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
            "dtype": dtype, "threads": args.threads, "torch": torch.__version__, "params": params,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "matmul_gflops": round(flops / 1e9, 1), "bound_tokens_per_s": round(bound)}
    print(json.dumps(head))
    result = {**head, "throughput": [], "latency": []}
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        for n in names:
            row = throughput(engines[n], prompts, bs, args.max_new_tokens, args.repeats, bound)
            result["throughput"].append(row)
            print(json.dumps(row), flush=True)
    best = {n: max(r["tokens_per_s"] for r in result["throughput"] if r["engine"] == engines[n].name) for n in names}
    result["best_tokens_per_s"] = best
    result["speedup_best_vs_best"] = round(best[names[1]] / best[names[0]], 2)
    print(json.dumps({"best_tokens_per_s": best, "speedup_best_vs_best": result["speedup_best_vs_best"]}))
    for n in names:
        row = latency(engines[n], prompts, args.max_new_tokens, args.latency_requests)
        result["latency"].append(row)
        print(json.dumps(row), flush=True)
    if not args.skip_samples:
        result["same_samples"] = same_samples(engines, task, problems, prompts, args.max_new_tokens, 64)
        print(json.dumps(result["same_samples"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
