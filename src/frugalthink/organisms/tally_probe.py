"""What folding costs a tally model: accuracy of its own traces when every step is forced to fold ``f`` digits.

The probe writes each step's head (the labels and digits of the next ``f`` operands, then ``+``) and lets the model
write the rest: the copied running total, the result, and whatever checks or hesitation it adds; it stops the model
at the next label and forces the next head. After the last step the model closes its thinking and answers itself.
So the answer is the model's own computation at a fixed granularity, and each written step is scored twice:
**copy** (the total it writes after ``+`` equals its previous result) and **arithmetic** (its result equals that
total plus the step's digits). The heads are forced, so look-ups of the digits are not measured here; the
free-running samples of `frugalthink eval` measure them. ``clean trace`` is the token count of the forced granularity with no checks or
hesitation: the shortest trace of that granularity.

    python -m frugalthink.organisms.tally_probe --model runs/demo-tally/base --levels 2,5,8 --folds 1,2,3,4 --split validation

Prints one row per (level, fold) and writes them to --out as JSON lines when given.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

STEP = re.compile(r"\+(\d+)=(\d+)")


def probe(model, tokenizer, problems, fold: int, temperature: float, seed: int, batch_size: int = 64,
          modulus: int = 0, answer_mod: int = 0) -> list[dict]:
    """One record per problem: the forced-fold completion, its answer, and per-step copy/arithmetic results."""
    import torch

    from frugalthink.organisms.tiny import count_tokens
    from frugalthink.tasks.chain import BOX_OPEN, LABELS, THINK_CLOSE, THINK_OPEN
    from frugalthink.tasks.grading import grade_many
    from frugalthink.tasks.tally import answer_of, even_folds, residue, write_trace

    stop = sorted({tokenizer.convert_tokens_to_ids(c) for c in LABELS} |
                  {tokenizer.convert_tokens_to_ids(THINK_CLOSE), tokenizer.eos_token_id})
    out = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        digits = [p.id for p in chunk]
        texts = [THINK_OPEN] * len(chunk)
        plans = [even_folds(len(d) - 1, fold) for d in digits]
        steps = [[] for _ in chunk]
        torch.manual_seed(seed * 7919 + start)
        for k in range(max(len(p) for p in plans) + 1):
            prefixes = []
            for i, d in enumerate(digits):
                if k < len(plans[i]):
                    first = 1 + sum(plans[i][:k])
                    head = "".join(f"{LABELS[first + j]}{d[first + j]}" for j in range(plans[i][k])) + "+"
                else:
                    head = THINK_CLOSE + BOX_OPEN if k == len(plans[i]) else ""
                prefixes.append(texts[i] + head)
            gen = _continue(model, tokenizer, [p.question for p in chunk], prefixes, stop, temperature,
                            max_new=8 if k >= max(len(p) for p in plans) else 48)
            for i, (prefix, g) in enumerate(zip(prefixes, gen, strict=True)):
                if k > len(plans[i]):
                    continue
                texts[i] = prefix + g
                if k < len(plans[i]):
                    steps[i].append(g)
        for p, d, text, plan, written in zip(chunk, digits, texts, plans, steps, strict=True):
            total, first, rows = int(d[0]), 1, []
            for f, g in zip(plan, written, strict=True):
                m = STEP.match("+" + g)
                copied = int(m.group(1)) if m else None
                result = int(m.group(2)) if m else None
                ops = sum(int(c) for c in d[first : first + f])
                want = residue(copied + ops, modulus) if m else None
                rows.append({"fold": f, "copy": copied == total, "arith": m is not None and result == want})
                total, first = (result if result is not None else -1), first + f
            grade = grade_many([text], [str(answer_of(d, modulus, answer_mod))], kind="exact")[0]
            out.append({"id": p.id, "level": p.level, "fold": fold, "completion": text, "steps": rows,
                        "correct": grade.correct, "tokens": count_tokens(tokenizer, text),
                        "clean_tokens": count_tokens(tokenizer, write_trace(d, plan, modulus=modulus))})
    return out


def _continue(model, tokenizer, prompts, prefixes, stop, temperature, max_new):
    """Sample each prompt+prefix until a stop token (not kept) or ``max_new`` tokens; returns the new text."""
    import torch

    ids = [tokenizer(q, add_special_tokens=False)["input_ids"] + tokenizer(x, add_special_tokens=False)["input_ids"]
           for q, x in zip(prompts, prefixes, strict=True)]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    inp = torch.tensor([[pad] * (width - len(s)) + s for s in ids])
    att = (torch.arange(width)[None, :] >= torch.tensor([width - len(s) for s in ids])[:, None]).long()
    with torch.no_grad():
        gen = model.generate(input_ids=inp, attention_mask=att, max_new_tokens=max_new, eos_token_id=stop,
                             pad_token_id=pad, do_sample=temperature > 0,
                             temperature=temperature if temperature > 0 else None, top_p=1.0, top_k=0)
    new = []
    for row in gen[:, width:].tolist():
        cut = next((j for j, t in enumerate(row) if t in stop or t == pad), len(row))
        new.append(tokenizer.decode(row[:cut]))
    return new


def summarize(records: list[dict]) -> list[dict]:
    from frugalthink.util.stats import wilson_interval

    rows = []
    for key in sorted({(r["level"], r["fold"]) for r in records}):
        rs = [r for r in records if (r["level"], r["fold"]) == key]
        steps = [s for r in rs for s in r["steps"] if s["fold"] == key[1]]
        n_ok = sum(r["correct"] for r in rs)
        lo, hi = wilson_interval(n_ok, len(rs))
        rows.append({"level": key[0], "fold": key[1], "n": len(rs), "accuracy": n_ok / len(rs),
                     "ci95": [round(lo, 3), round(hi, 3)],
                     "copy_per_step": sum(s["copy"] for s in steps) / max(1, len(steps)),
                     "arith_per_step": sum(s["arith"] for s in steps) / max(1, len(steps)),
                     "mean_tokens": sum(r["tokens"] for r in rs) / len(rs),
                     "clean_tokens": sum(r["clean_tokens"] for r in rs) / len(rs)})
    return rows


def _base_tally_config(model_dir: str) -> dict:
    """The tally config a base was built with (its ``frugalthink_base.json``), or {} for other models."""
    from pathlib import Path

    path = Path(model_dir) / "frugalthink_base.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("config", {}).get("tally", {})


def task_settings(model_dir: str, modulus: int | None, answer_mod: int | None) -> tuple[int, int]:
    """(modulus, answer_mod) to probe with: given values, else the base's, else TallyConfig's defaults; a base built
    before ``answer_mod`` existed answered the plain total."""
    from frugalthink.tasks.tally import TallyConfig

    built = _base_tally_config(model_dir)
    if modulus is None:
        modulus = built.get("modulus", TallyConfig.modulus)
    if answer_mod is None:
        answer_mod = built.get("answer_mod", 0 if built else TallyConfig.answer_mod)
    return modulus, answer_mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--levels", default="2,5,8")
    ap.add_argument("--folds", default="1,2,3,4")
    ap.add_argument("--split", default="validation", choices=("validation", "test"))
    ap.add_argument("--limit", type=int, default=70, help="problems per level")
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modulus", type=int, help="tally.modulus (default: the base's, from its frugalthink_base.json; "
                                                "else TallyConfig's)")
    ap.add_argument("--answer-mod", type=int, help="tally.answer_mod (default: the base's, else TallyConfig's)")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from frugalthink.tasks import get_task

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    levels = [int(x) for x in args.levels.split(",")]
    modulus, answer_mod = task_settings(args.model, args.modulus, args.answer_mod)
    task = get_task("tally", config={"min_level": min(levels), "max_level": max(levels), "modulus": modulus,
                                     "answer_mod": answer_mod})
    problems = task.load(args.split)
    records = []
    for level in levels:
        ps = [p for p in problems if p.level == level][: args.limit]
        for fold in (int(x) for x in args.folds.split(",")):
            if fold <= level:
                records += probe(model, tokenizer, ps, fold, args.temperature, args.seed, modulus=modulus,
                                 answer_mod=answer_mod)
    rows = summarize(records)
    print("level fold    n  accuracy [95% CI]      copy/step  arith/step  tokens  clean trace")
    for r in rows:
        print(f"{r['level']:>5} {r['fold']:>4} {r['n']:>4}  {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
              f"   {r['copy_per_step']:.3f}      {r['arith_per_step']:.3f}   {r['mean_tokens']:6.1f}  {r['clean_tokens']:6.1f}")
    if args.out:
        with open(args.out, "w") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "model": args.model, "split": args.split,
                                     "temperature": args.temperature}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
