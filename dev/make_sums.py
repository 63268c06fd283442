"""Write the `sums` task of the SmolLM2 study: small integer arithmetic in words, graded levels, fixed splits.

    python dev/make_sums.py --out runs/sums.jsonl

Levels (the kind of question): 1 = a + b with a up to 25 and b one digit, 2 = a two-digit plus a one-digit term, 3 = a
two-digit minus a smaller term, 4 = a x b with a up to 25 and b one digit, 5 = two two-digit terms. Each row has `question`, `answer`,
`id`, `level` and `split` (train / validation / test); the same seed writes the same file. Questions are unique
across splits, so a test question was never seen in training.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SPLITS = (("test", 200), ("validation", 100), ("train", 450))  # 150 a level; level 1 and 4 have 192 questions


def question(level: int, rng: random.Random) -> tuple[str, int]:
    if level == 1:
        a, b = rng.randint(2, 25), rng.randint(2, 9)
        return f"What is {a} + {b}?", a + b
    if level == 2:
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return f"What is {a} + {b}?", a + b
    if level == 3:
        a, b = rng.randint(20, 99), rng.randint(2, 19)
        return f"What is {a} - {b}?", a - b
    if level == 4:
        a, b = rng.randint(2, 25), rng.randint(2, 9)
        return f"What is {a} times {b}?", a * b
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} + {b}?", a + b


def rows(seed: int = 0) -> list[dict]:
    rng, seen, out = random.Random(seed), set(), []
    for split, n in SPLITS:
        count = 0
        while count < n:
            level = 1 + count % 5
            text, answer = question(level, rng)
            if text in seen:
                continue
            seen.add(text)
            out.append({"id": f"{split}-{count}", "question": text, "answer": str(answer), "level": level,
                        "split": split})
            count += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = rows(args.seed)
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    print(f"wrote {len(data)} rows to {path}")


if __name__ == "__main__":
    main()
