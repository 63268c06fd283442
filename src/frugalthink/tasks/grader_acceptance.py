"""Grader acceptance on real benchmarks: reference solutions must grade correct, corrupted ones wrong.

Usage: python -m frugalthink.tasks.grader_acceptance [--misses]   (numbers: docs/results/grader.md)
"""

from __future__ import annotations

import argparse
import random
import time

from frugalthink.tasks.answers import last_boxed, normalize
from frugalthink.tasks.grading import grade_many
from frugalthink.tasks.math_benchmarks import gold_from_text, shipped_file
from frugalthink.util.jsonl import iter_jsonl


def rows(name):
    return [r for _, r in iter_jsonl(shipped_file(name))]


def replace_final(completion: str, new: str) -> str:
    """Put ``new`` where the completion's final answer stands (last boxed, else after ####)."""
    i = completion.rfind("\\boxed")
    if i >= 0:
        inner = last_boxed(completion[i:])
        j = completion.index("{", i)
        return completion[:j] + "{" + new + "}" + completion[j + 2 + len(inner) :]
    k = completion.rfind("####")
    return completion[:k] + "#### " + new


def corrupt_answers(golds: list[str], seed: int = 0) -> list[str]:
    """For each item, another item's gold that differs from it in normal form."""
    rng = random.Random(seed)
    out = []
    for g in golds:
        while True:
            other = golds[rng.randrange(len(golds))]
            if normalize(other) != normalize(g):
                out.append(other)
                break
    return out


def check(name, completions, golds, show_misses, expect_correct=True, number_fallback=False):
    t0 = time.perf_counter()
    results = grade_many(completions, golds, number_fallback=number_fallback)
    dt = time.perf_counter() - t0
    hits = sum(r.correct == expect_correct for r in results)
    label = "graded correct" if expect_correct else "graded wrong"
    print(f"{name:34s} {hits:5d}/{len(results)} {label} ({100 * hits / len(results):.1f}%)  {dt:.2f}s")
    if show_misses:
        for i, r in enumerate(results):
            if r.correct != expect_correct:
                print(f"    miss #{i}: gold={golds[i]!r} extracted={r.extracted!r} reason={r.reason}")
    return hits / len(results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true", help="list every miss")
    args = ap.parse_args()
    m = rows("math500")
    gsm = rows("gsm8k")
    aime, amc = rows("aime24"), rows("amc23")
    math_gold = [r["answer"] for r in m]
    gsm_gold = [gold_from_text(r["answer"]) for r in gsm]
    check("MATH500 reference solutions", [r["solution"] for r in m], math_gold, args.misses)
    # GSM8K declares the bare-number fallback (its references end in "#### N"); the other tasks box their answers.
    check("GSM8K reference solutions", [r["answer"] for r in gsm], gsm_gold, args.misses, number_fallback=True)
    for name, rs in (("AIME24", aime), ("AMC23", amc)):
        golds = [gold_from_text(r["answer"]) for r in rs]
        check(f"{name} \\boxed{{answer}}", [f"\\boxed{{{r['answer']}}}" for r in rs], golds, args.misses)
    wrong = corrupt_answers(math_gold)
    check("MATH500 with another's answer", [replace_final(r["solution"], w) for r, w in zip(m, wrong)],
          math_gold, args.misses, expect_correct=False)
    wrong = corrupt_answers(gsm_gold)
    check("GSM8K with another's answer", [replace_final(r["answer"], w) for r, w in zip(gsm, wrong)],
          gsm_gold, args.misses, expect_correct=False, number_fallback=True)
    # Throughput: 1,000 MATH500 completions (each solution twice), pool already warm from above.
    comps = [r["solution"] for r in m] * 2
    t0 = time.perf_counter()
    grade_many(comps, math_gold * 2)
    print(f"throughput: 1000 MATH500 completions graded in {time.perf_counter() - t0:.2f}s")
    comps = [replace_final(r["solution"], w) for r, w in zip(m, corrupt_answers(math_gold, 1))] * 2
    t0 = time.perf_counter()
    grade_many(comps, math_gold * 2)
    print(f"throughput: 1000 wrong MATH500 completions (all via math-verify) in {time.perf_counter() - t0:.2f}s")


if __name__ == "__main__":
    main()
