"""`tally`: the second embedded task -- a running total of labelled digits, where coarse steps cost accuracy.

A problem is a string of digits ``d0 d1 ... dn``, labelled in the prompt as in `chain`; the level is ``n``. A trace
writes the plain running total (two digits once it passes 9) step by step; a step may *fold* several digits, naming
each by its label, then adding their sum to the running total in one written result. The answer is the last digit
of the total (``answer_mod`` 10; 0 asks for the whole total)::

    A3B5C8D1E4:  ->  fine    <think>B5+3=8C8+8=16D1+16=17E4+17=21</think>\\boxed{1}
                     fold 2  <think>B5C8+3=16D1E4+16=21</think>\\boxed{1}
                     fold 4  <think>B5C8D1E4+3=21</think>\\boxed{1}

Every trace the base is trained on is correct. What a folded step costs is the model's: one written result must
carry the sum of ``f + 1`` operands, and the tiny model computes that less reliably as ``f`` and the running total
grow (measured, not assumed: ``frugalthink.organisms.tally_probe`` and docs/benchmark.md). So coarse traces are short and
risky, fine traces long and safe, and the risk compounds over the steps of a harder problem. The answer's last digit
keeps the trace necessary: from the trace it is a copy, but a one-shot answer is a sum mod 10, which the tiny model
does not learn (the answer-only control scores chance), while a plain total is one attention average away.

The base's traces are varied the way R1's are. Ordinary traces are written step by step and fold a pair now and then
while the total is small (probability ``c * max(0, 1 - total / mixed_until)`` before each step, ``c ~
U(mixed_prob)`` per trace), the way a writer skips steps on easy arithmetic; a share ``coarse_share`` is written
tersely, with a rate ``c ~ U(coarse_prob)`` of coarse steps (fold ``2..max_fold``, uniform, at any total). All
traces carry redundant **checks** ``(16+1+8=25)`` (the step recomputed with its operands in reverse order) with rate
``q ~ U(check_prob)`` and **hesitation** from `chain`'s fillers with rate ``f ~ U(filler_prob)``; ordinary traces
may open with a few hesitation phrases (``opening``), an overhead that does not grow with the level, so that the base
overthinks easy problems the most, relative to what they need.

Where the folded sums are learned: a share ``practice_share`` of the SFT problems is posed with ``;`` in place of
``:`` and always answered tersely (a model's other training data, where terse arithmetic is common, not its
reasoning style). Evaluation and RL use only ``:`` prompts.

Splits are disjoint by construction: a digit string is a test problem iff a stable hash of it falls in bucket 0,
a validation problem iff it falls in bucket 1, and a training problem otherwise.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from frugalthink.tasks import chain
from frugalthink.tasks.base import Problem
from frugalthink.tasks.chain import BOX_OPEN, FILLERS, LABELS, THINK_CLOSE, THINK_OPEN, ChainTask, prompt_of

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TallyConfig:
    min_level: int = 2
    max_level: int = 8
    max_fold: int = 4
    coarse_share: float = 0.08  # share of the base's traces written in the terse style
    coarse_prob: tuple[float, float] = (0.5, 1.0)  # rate of coarse steps in a terse trace (the others have none)
    # share of SFT problems posed with the terse marker (prompt ending in ";"), always answered tersely: where the
    # model practises folded sums without it becoming the style of its answers to ordinary prompts
    practice_share: float = 0.45
    check_prob: tuple[float, float] = (0.2, 0.7)
    filler_prob: tuple[float, float] = (0.3, 0.9)
    # 0: the plain sum (two-digit totals, levels up to 10); m >= 2: the running total reduced mod m at every step (one
    # digit for m = 10), so a folded step adds and reduces in one written result, and levels up to 25 are allowed
    modulus: int = 0
    # 0: the answer is the final written total; m >= 2: its residue mod m (the last digit for m = 10), boxed after a
    # trace of plain totals. The trace is unchanged (copying the last digit is free), but a one-shot
    # answer must compute a modular sum, which a tiny model does not learn (the answer-only control)
    answer_mod: int = 10
    # rate of fold-2 steps in the ordinary (not terse) traces, drawn per trace: (0, 0) keeps them all fine
    mixed_prob: tuple[float, float] = (0.2, 0.6)
    # > 0: an ordinary trace folds a pair only while the running total is small: with probability
    # c * max(0, 1 - total / mixed_until) before each step, the way a writer skips steps on easy arithmetic
    mixed_until: int = 45
    # hesitation phrases an ordinary trace opens with, a count drawn uniformly from this range: overhead that does not
    # grow with the level, so the base overthinks easy problems most (as R1 does on GSM8K); (0, 0) keeps none
    opening: tuple[int, int] = (0, 3)
    test_size: int = 250  # per level and split (test, validation), capped by how many strings exist
    bucket: int = 10  # 1 in bucket digit strings is a test problem, 1 in bucket a validation problem
    seed: int = 0

    def validate(self) -> None:
        from frugalthink.util.errors import UserError

        if self.modulus == 1 or self.modulus < 0:
            raise UserError(f"tally.modulus must be 0 (plain sum) or >= 2, got {self.modulus}")
        if self.answer_mod == 1 or self.answer_mod < 0:
            raise UserError(f"tally.answer_mod must be 0 (the total) or >= 2, got {self.answer_mod}")
        top = len(LABELS) - 1 if self.modulus else 10
        if not 1 <= self.min_level <= self.max_level <= top:
            raise UserError(f"tally: need 1 <= min_level <= max_level <= {top} "
                            f"({'one label per digit' if self.modulus else 'two-digit totals'}), got "
                            f"{self.min_level}..{self.max_level}")
        if not 1 <= self.max_fold <= 10:
            raise UserError(f"tally.max_fold must be in 1..10, got {self.max_fold}")
        for name in ("coarse_share", "practice_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"tally.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("coarse_prob", "mixed_prob", "check_prob", "filler_prob"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise UserError(f"tally.{name}: need 0 <= low <= high <= 1, got {(lo, hi)}")
        lo, hi = self.opening
        if not 0 <= lo <= hi <= 10:
            raise UserError(f"tally.opening: need 0 <= low <= high <= 10 phrases, got {(lo, hi)}")
        if self.mixed_until < 0:
            raise UserError(f"tally.mixed_until must be >= 0, got {self.mixed_until}")
        if self.bucket < 3:
            raise UserError(f"tally.bucket must be >= 3 (test, validation and train buckets), got {self.bucket}")


def split_of(digits: str, bucket: int = 10) -> str:
    h = int(hashlib.sha256(f"tally:{digits}".encode()).hexdigest()[:8], 16) % bucket
    return "test" if h == 0 else "validation" if h == 1 else "train"


def residue(x: int, m: int) -> int:
    """``x mod m``; ``x`` itself when ``m`` is 0 (the plain total)."""
    return x % m if m else x


def answer_of(digits: str, modulus: int = 0, answer_mod: int = 0) -> int:
    """The boxed answer: the final written total (reduced mod ``modulus`` when set), mod ``answer_mod`` when set."""
    return residue(residue(sum(int(c) for c in digits), modulus), answer_mod)


def plan_folds(level: int, rng: random.Random, coarse_rate: float, max_fold: int) -> list[int]:
    """Fold sizes of a trace's steps (they add up to ``level``): a step is coarse with probability ``coarse_rate``,
    folding ``2..max_fold`` digits (uniform, capped by what is left)."""
    folds, left = [], level
    while left:
        f = rng.randint(2, max_fold) if max_fold > 1 and rng.random() < coarse_rate else 1
        f = min(f, left)
        folds.append(f)
        left -= f
    return folds


def plan_mixed(digits: str, rng: random.Random, rate: float, until: int) -> list[int]:
    """Fold sizes of an ordinary trace: a step folds a pair with probability ``rate * max(0, 1 - total / until)``,
    ``total`` being the running total before it (``until`` 0: ``rate`` throughout)."""
    folds, i, total = [], 1, int(digits[0])
    while i < len(digits):
        p = rate * max(0.0, 1 - total / until) if until else rate
        f = 2 if len(digits) - i >= 2 and rng.random() < p else 1
        folds.append(f)
        total += sum(int(c) for c in digits[i : i + f])
        i += f
    return folds


def even_folds(level: int, fold: int) -> list[int]:
    """Every step folds ``fold`` digits; the last one what is left."""
    return [min(fold, level - i) for i in range(0, level, fold)]


def write_trace(digits: str, folds: list[int], rng: random.Random | None = None, check_rate: float = 0.0,
                filler_rate: float = 0.0, modulus: int = 0, answer_mod: int = 0, opening: int = 0) -> str:
    """The completion that adds ``digits`` with the given fold sizes (each result reduced mod ``modulus`` when it
    is not 0; the boxed answer is the final total mod ``answer_mod`` when that is not 0); ``opening`` hesitation
    phrases before the first step, checks and filler drawn from ``rng``."""
    if sum(folds) != len(digits) - 1:
        raise ValueError(f"folds {folds} do not add up to level {len(digits) - 1}")
    if opening and rng is None:
        raise ValueError("an opening needs an rng to draw its phrases from")
    total, i = int(digits[0]), 1
    parts = [THINK_OPEN] + [rng.choice(FILLERS) for _ in range(opening)]
    for f in folds:
        ops = digits[i : i + f]
        new = residue(total + sum(int(c) for c in ops), modulus)
        parts.append("".join(f"{LABELS[i + j]}{c}" for j, c in enumerate(ops)) + f"+{total}={new}")
        if rng is not None and rng.random() < check_rate:
            parts.append("(" + "+".join([str(total)] + list(reversed(ops))) + f"={new})")
        if rng is not None and rng.random() < filler_rate:
            parts.append(rng.choice(FILLERS))
        total, i = new, i + f
    parts += [THINK_CLOSE, BOX_OPEN, str(residue(total, answer_mod)), "}"]
    return "".join(parts)


def trace_folds(completion: str) -> list[int]:
    """Fold sizes of the steps written in a completion (labels between step boundaries); [] when none."""
    think = completion.split(THINK_CLOSE)[0]
    folds, run = [], 0
    for i, ch in enumerate(think):
        if ch in LABELS and i + 1 < len(think) and think[i + 1].isdigit():
            run += 1
        elif ch == "+" and run:
            folds.append(run)
            run = 0
    return folds


def verbose_completion(digits: str, rng: random.Random, cfg: TallyConfig, verbosity: float = 1.0,
                       terse: bool | None = None) -> str:
    """A correct completion of the varied kind the base is trained on (see the module docstring); ``terse`` forces
    the style (None: terse with probability ``coarse_share``)."""
    terse = rng.random() < cfg.coarse_share if terse is None else terse
    c = rng.uniform(*(cfg.coarse_prob if terse else cfg.mixed_prob))
    q = verbosity * rng.uniform(*cfg.check_prob)
    f = verbosity * rng.uniform(*cfg.filler_prob)
    if terse:
        plan = plan_folds(len(digits) - 1, rng, c, cfg.max_fold)
    else:  # ordinary traces fold pairs only, and none when max_fold is 1
        plan = plan_mixed(digits, rng, c if cfg.max_fold >= 2 else 0.0, cfg.mixed_until)
    # drawn only when asked for, so that settings without an opening keep their random streams
    opening = round(verbosity * rng.randint(*cfg.opening)) if cfg.opening[1] and not terse else 0
    return write_trace(digits, plan, rng, q, f, cfg.modulus, cfg.answer_mod, opening)


PRACTICE_MARK = ";"


def practice_prompt(digits: str) -> str:
    """The prompt of a practice problem: the labelled digits and ``;`` instead of ``:``."""
    return prompt_of(digits)[:-1] + PRACTICE_MARK


def answer_only_completion(digits: str, modulus: int = 0, answer_mod: int = 0) -> str:
    return chain.answer_only_completion(digits, lambda d: answer_of(d, modulus, answer_mod))


def sample_digits(rng: random.Random, level: int, split: str, bucket: int) -> str:
    return chain.draw_digits(rng, level, lambda d: split_of(d, bucket) == split)


class TallyTask(ChainTask):
    """``load("train" | "validation" | "test")``: seeded, disjoint splits; validation and test have ``test_size``
    problems per level."""

    name = "tally"
    answer_tokens = 4  # two digits, "}", EOS
    splits = SPLITS

    def __init__(self, config: TallyConfig | None = None, train_size: int = 4000) -> None:
        super().__init__(None, train_size)
        self.cfg = config or TallyConfig()

    def load(self, split: str = "test") -> list[Problem]:
        self.check_split(split)
        rng = random.Random(f"tally-{split}-{self.cfg.seed}")
        if split == "train":
            levels = self.levels()
            return [self._problem(sample_digits(rng, levels[i % len(levels)], split, self.cfg.bucket))
                    for i in range(self.train_size)]
        bucket = self.cfg.bucket
        return [self._problem(d) for d in chain.held_out(
            self.levels(), self.cfg.test_size, bucket, lambda level: sample_digits(rng, level, split, bucket))]

    def _problem(self, digits: str) -> Problem:
        cfg = self.cfg
        fine = write_trace(digits, [1] * (len(digits) - 1), modulus=cfg.modulus, answer_mod=cfg.answer_mod)
        tokens = self._oracle_len(fine) if self._oracle_len else None
        return Problem(id=digits, question=prompt_of(digits), answer=str(answer_of(digits, cfg.modulus, cfg.answer_mod)),
                       level=len(digits) - 1,
                       oracle_tokens=tokens, meta={"oracle_completion": fine})
