"""`chain`: the embedded synthetic reasoning task -- running sums mod 10, written the way R1 writes.

A problem is a string of digits ``d0 d1 ... dn``, each labelled by a letter in the prompt; the answer is
``(d0 + ... + dn) mod 10``. The level is ``n``, the number of additions (2..8 by default). The minimal correct
completion names each digit by its label, copies the running sum and writes the new one::

    A3B5C8D1:  ->  <think>B5+3=8C8+8=6D1+6=7</think>\\boxed{7}

(Labels turn "find the i-th digit" into a lookup, and copying the running sum puts both operands of each addition
next to each other; without them the tiny model learned the format but not the arithmetic within the SFT
budget -- see dev/LOG.md.)

A *verbose* completion is what an overthinking reasoner writes. It adds two kinds of content:

* **checks** ``(3+5=8)`` after a step: the sum recomputed with the operands reversed. A step is written wrong (off
  by one) with probability ``p_error``; a wrong step is always followed by a check, and the next step continues
  from the check's (right) value. So checks repair errors: verification buys accuracy, more so on longer problems.
  After a right step a check is taken with a per-problem probability ``q ~ U(check_prob)``: then it is redundant.
* **hesitation** (" wait,", " hmm, let me re-check.", ...) after a step with per-problem probability
  ``f ~ U(filler_prob)``: text that carries no digits, so no risk of error, and no value.

Correctness-only RL has no reason to touch either (redundant checks and filler cost nothing and risk nothing),
while a length penalty should strip filler first and redundant checks next -- the two behaviours the demo measures.

Train and test problems are disjoint by construction: a digit string belongs to the test split iff a stable hash
of it falls in the test bucket.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from frugalthink.tasks.base import Problem, Task
from frugalthink.util.errors import UserError

THINK_OPEN, THINK_CLOSE, BOX_OPEN = "<think>", "</think>", "\\boxed{"
FILLERS = (
    " wait,",
    " hmm,",
    " ok so far.",
    " let me see.",
    " hold on,",
    " hmm, let me re-check.",
    " wait, is that right?",
    " let me think again.",
)


@dataclass(frozen=True)
class ChainConfig:
    min_level: int = 2
    max_level: int = 8
    p_error: float = 0.04
    check_prob: tuple[float, float] = (0.4, 0.9)
    filler_prob: tuple[float, float] = (0.4, 1.0)
    test_size: int = 70  # per level, capped by how many test problems exist at that level
    test_bucket: int = 10  # 1 in test_bucket digit strings is a test problem
    seed: int = 0

    def validate(self) -> None:
        from frugalthink.util.errors import UserError

        if not 1 <= self.min_level <= self.max_level <= 25:
            raise UserError(f"chain: need 1 <= min_level <= max_level <= 25, got {self.min_level}..{self.max_level}")
        for name in ("check_prob", "filler_prob"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise UserError(f"chain.{name}: need 0 <= low <= high <= 1, got {(lo, hi)}")
        if not 0 <= self.p_error < 0.5:
            raise UserError(f"chain.p_error must be in [0, 0.5), got {self.p_error}")


def is_test(digits: str, bucket: int = 10) -> bool:
    h = int(hashlib.sha256(digits.encode()).hexdigest()[:8], 16)
    return h % bucket == 0


def answer_of(digits: str) -> int:
    return sum(int(c) for c in digits) % 10


LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def prompt_of(digits: str) -> str:
    return "".join(f"{LABELS[i]}{c}" for i, c in enumerate(digits)) + ":"


def minimal_completion(digits: str) -> str:
    """The shortest correct completion (the oracle)."""
    s = int(digits[0])
    parts = [THINK_OPEN]
    for i, c in enumerate(digits[1:], start=1):
        new = (s + int(c)) % 10
        parts.append(f"{LABELS[i]}{c}+{s}={new}")
        s = new
    parts += [THINK_CLOSE, BOX_OPEN, str(s), "}"]
    return "".join(parts)


def verbose_completion(digits: str, rng: random.Random, cfg: ChainConfig) -> str:
    """An overthinking but correct completion (see module docstring)."""
    q = rng.uniform(*cfg.check_prob)
    f = rng.uniform(*cfg.filler_prob)
    s = int(digits[0])
    parts = [THINK_OPEN]
    for i, c in enumerate(digits[1:], start=1):
        d = int(c)
        right = (s + d) % 10
        wrong = rng.random() < cfg.p_error
        written = (right + rng.choice((1, 9))) % 10 if wrong else right
        parts.append(f"{LABELS[i]}{c}+{s}={written}")
        if wrong or rng.random() < q:
            parts.append(f"({s}+{d}={right})")
        if rng.random() < f:
            parts.append(rng.choice(FILLERS))
        s = right
    parts += [THINK_CLOSE, BOX_OPEN, str(s), "}"]
    return "".join(parts)


def answer_only_completion(digits: str, answer=answer_of) -> str:
    """Control target: no reasoning at all (``answer`` computes the task's answer from the digits)."""
    return f"{THINK_OPEN}{THINK_CLOSE}{BOX_OPEN}{answer(digits)}}}"


def draw_digits(rng: random.Random, level: int, accept) -> str:
    """Random digit strings of ``level + 1`` digits until ``accept(digits)`` (the split a string belongs to)."""
    while True:
        digits = "".join(str(rng.randrange(10)) for _ in range(level + 1))
        if accept(digits):
            return digits


def sample_digits(rng: random.Random, level: int, test: bool, bucket: int) -> str:
    return draw_digits(rng, level, lambda d: is_test(d, bucket) == test)


def held_out(levels: list[int], size: int, bucket: int, draw) -> list[str]:
    """Distinct digit strings of a held-out split, sorted within each level: ``size`` per level, fewer where a level
    has few strings in its bucket (10**(level+1) / bucket; at most half of them are drawn)."""
    out: list[str] = []
    for level in levels:
        seen: set[str] = set()
        cap = min(size, 10 ** (level + 1) // bucket // 2)
        while len(seen) < cap:
            seen.add(draw(level))
        out += sorted(seen)
    return out


CONTROL_MARK, MARK_STEP = "!", 0.05  # the embedded tasks' alpha control: one mark per 0.05 (`control_message`)


def control_marks(alpha: float) -> int:
    """How many marks write ``alpha`` in an embedded task's prompt; alphas off the 0.05 grid cannot be written.

    >>> control_marks(0.2), control_marks(0.05), control_marks(0)
    (4, 1, 0)
    """
    n = round(alpha / MARK_STEP)
    if n < 0 or abs(n * MARK_STEP - alpha) > 1e-9:
        raise UserError(f"alpha {alpha:g}: the embedded tasks write alpha as marks of {MARK_STEP:g} "
                        f"(0, 0.05, 0.1, ...); {alpha:g} is not one")
    return n


class ChainTask(Task):
    """The synthetic task. ``load("test")`` is a fixed, seeded test set; ``load("train")`` a seeded train set."""

    name = "chain"
    grading_kind = "exact"
    uses_chat_template = False
    instruction = ""
    splits = ("train", "test")
    force_answer_text = THINK_CLOSE + BOX_OPEN
    answer_tokens = 3  # digit, "}", EOS

    def __init__(self, config: ChainConfig | None = None, train_size: int = 4000) -> None:
        self.cfg = config or ChainConfig()
        self.train_size = train_size
        self._oracle_len = None  # set by callers that know the tokenizer (token counts), see `with_token_counter`

    def levels(self) -> list[int]:
        return list(range(self.cfg.min_level, self.cfg.max_level + 1))

    def load(self, split: str = "test") -> list[Problem]:
        self.check_split(split)
        test = split == "test"
        rng = random.Random(f"chain-{split}-{self.cfg.seed}")
        problems: list[Problem] = []
        if test:
            bucket = self.cfg.test_bucket
            problems = [self._problem(d) for d in held_out(
                self.levels(), self.cfg.test_size, bucket, lambda level: sample_digits(rng, level, True, bucket))]
        else:
            for i in range(self.train_size):
                level = self.levels()[i % len(self.levels())]
                problems.append(self._problem(sample_digits(rng, level, False, self.cfg.test_bucket)))
        return problems

    def _problem(self, digits: str) -> Problem:
        oracle = minimal_completion(digits)
        tokens = self._oracle_len(oracle) if self._oracle_len else None
        return Problem(
            id=digits, question=prompt_of(digits), answer=str(answer_of(digits)), level=len(digits) - 1,
            oracle_tokens=tokens, meta={"oracle_completion": oracle},
        )

    def with_token_counter(self, count) -> ChainTask:
        """Let problems carry ``oracle_tokens``: ``count(text)`` = tokens of the oracle completion incl. EOS."""
        self._oracle_len = count
        return self

    def user_message(self, problem: Problem) -> str:
        return problem.question

    def control_message(self, problem: Problem, alpha: float) -> str:
        """``A3B5C8D1!!!!:`` -- alpha 0.2 as four marks of 0.05 where `budget_message` puts a budget; alpha 0 is the
        bare prompt. The tiny base never saw a control text. Written as a number (``A3B5C8D1 0.2:``) the alpha's
        digit reads like one more problem digit: a conditioned tally model told alpha 0 from the rest but wrote the
        same 53 tokens at every alpha > 0; as marks (a character no task text uses, so an attention head can count
        it) its tokens fall with alpha and an unseen 0.3 (six marks) lands between 0.2 and 0.4 (docs/results/conditioned.md).
        A control line ``alpha=0.2`` in front of the prompt collapses the chain base (0.108 accuracy)."""
        return f"{problem.question[:-1]}{CONTROL_MARK * control_marks(alpha)}:"

    def ratio_message(self, problem: Problem, ratio: float) -> str:
        """``A3B5C8D1!!!!!!!!:`` -- a budget ratio of 0.6 as the cut, 1 - 0.6, in marks of 0.05 (eight), where
        `control_message` writes an alpha; the top tier (ratio 1 or more) is the bare prompt, so that it starts as the
        base. More marks, less thinking, as with alpha."""
        cut = round(max(0.0, 1.0 - ratio), 9)
        if abs(round(cut / MARK_STEP) * MARK_STEP - cut) > 1e-9:
            raise UserError(f"budget ratio {ratio:g}: the embedded tasks write a ratio as marks of {MARK_STEP:g} "
                            f"(1, 0.95, 0.9, ...); {ratio:g} is not one")
        return f"{problem.question[:-1]}{CONTROL_MARK * control_marks(cut)}:"

    def budget_message(self, problem: Problem, tokens: int) -> str:
        """``A3B5C8D1 48:`` -- the budget just before the colon. Of six placements tried on the base (dev/LOG.md),
        this one disturbs it least (0.83 accuracy before any L1 training, vs 0.07-0.15 for a prefix)."""
        return f"{problem.question[:-1]} {tokens}:"
