"""The one grader: every reward and every evaluation in frugalthink goes through `grade_many`.

A completion is graded in three steps:
1. truncated (no EOS) -> wrong, reason ``truncated``;
2. `frugalthink.tasks.answers.extract` (strict rules: closed thinking, one boxed value, number fallback only where the
   task declares it) -> no answer means wrong, with its reason (``unfinished_thinking``, ``empty_box``,
   ``hedging``, ``no_answer``);
3. comparison with the gold answer. ``kind="exact"`` (synthetic tasks) compares normal forms. ``kind="math"``
   first tries the same exact normal-form match (most right answers are written like the gold), then math-verify's
   ``verify(gold, pred)`` -- gold first, the function is not symmetric.

math-verify guards itself with ``signal.alarm``, which only works on a process's main thread. We switch that off
and run math-verify in worker processes that we kill when an item overruns its deadline, so a pathological
completion costs at most ``timeout_s`` and the batch goes on (reason ``timeout``). This works from any thread.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing.connection import wait

from frugalthink.tasks.answers import extract, normalize, strip_assignment

REASONS = ("correct", "truncated", "unfinished_thinking", "empty_box", "hedging", "no_answer", "mismatch", "timeout")
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GradeResult:
    """Outcome of grading one completion. ``reason`` is ``correct`` when correct, else why not (see REASONS)."""

    correct: bool
    extracted: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------- worker side
@lru_cache(maxsize=4096)
def _parse(text: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # The answer is already extracted; wrap it so math-verify reads it as LaTeX, and fall back to plain
    # expressions ("1/2", "3.5") when LaTeX parsing finds nothing.
    wrapped = text if "\\boxed" in text else f"${text}$"
    return parse(
        wrapped,
        extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
        parsing_timeout=None,
    )


def _math_equal(gold: str, pred: str) -> str:
    """'correct' / 'mismatch' / 'no_answer' for one pair; runs inside a worker process."""
    from math_verify import verify

    gold_parsed = _parse(gold)
    if not gold_parsed:
        gold_parsed = [gold]  # an unparseable gold still matches an identical string
    pred_parsed = _parse(pred)
    if not pred_parsed:
        return "no_answer"
    if verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return "correct"
    rhs = strip_assignment(pred)
    if rhs != pred and "=" not in gold:
        rhs_parsed = _parse(rhs)
        if rhs_parsed and verify(gold_parsed, rhs_parsed, timeout_seconds=None):
            return "correct"
    return "mismatch"


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when its parent dies. A forked worker holds a copy of the parent's pipe
    end, so it would never see EOF, and a SIGKILLed run (OOM, a kill before ``--resume``) would leave it behind."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _serve(conn, parent: int) -> None:
    import logging
    import os
    import sys

    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        return
    sys.setrecursionlimit(10_000)
    # We own the timeout (see module docstring); silence math-verify's warning that its own is off.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        gold, pred = msg
        try:
            verdict = _math_equal(gold, pred)
        except Exception:  # noqa: BLE001 - model output must never crash grading
            verdict = "no_answer"
        conn.send(verdict)


# --------------------------------------------------------------------------------------------- parent side
class _Worker:
    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, os.getpid()), daemon=True)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=1)
        self.conn.close()


class MathVerifyPool:
    """A few long-lived worker processes running math-verify, each item under a hard deadline."""

    def __init__(self, workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.n = workers or max(1, min(2, os.cpu_count() or 1))
        self.timeout_s = timeout_s
        # fork is fast and needs no re-import; the workers only touch sympy/math-verify, never torch threads.
        self._ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        self._workers: list[_Worker] = []

    def _ensure(self) -> None:
        self._workers = [w for w in self._workers if w.proc.is_alive()]
        while len(self._workers) < self.n:
            self._workers.append(_Worker(self._ctx))

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            w.kill()
        self._workers = []

    def compare(self, pairs: Sequence[tuple[str, str]], timeout_s: float | None = None) -> list[str]:
        """Verdict for each (gold, pred): 'correct', 'mismatch', 'no_answer' or 'timeout'."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        self._ensure()
        verdicts: list[str | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))[::-1]
        idle = list(self._workers)
        busy: dict[_Worker, tuple[int, float]] = {}
        while todo or busy:
            while todo and idle:
                w = idle.pop()
                i = todo.pop()
                w.conn.send(pairs[i])
                busy[w] = (i, time.monotonic() + timeout_s)
            next_deadline = min(d for _, d in busy.values())
            ready = wait([w.conn for w in busy], timeout=max(0.0, next_deadline - time.monotonic()))
            now = time.monotonic()
            for w in list(busy):
                i, deadline = busy[w]
                if w.conn in ready:
                    try:
                        verdicts[i] = w.conn.recv()
                        idle.append(w)
                    except (EOFError, OSError):  # the worker died (e.g. a C-level stack overflow)
                        verdicts[i] = "timeout"
                        idle.append(self._replace(w))
                    del busy[w]
                elif now >= deadline:
                    verdicts[i] = "timeout"
                    idle.append(self._replace(w))
                    del busy[w]
        return [v or "timeout" for v in verdicts]

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(self._ctx)
        self._workers = [fresh if w is worker else w for w in self._workers]
        return fresh


_POOL: MathVerifyPool | None = None


def _pool() -> MathVerifyPool:
    global _POOL
    if _POOL is None:
        _POOL = MathVerifyPool()
        atexit.register(_POOL.close)
    return _POOL


def grade_many(
    completions: Sequence[str],
    golds: Sequence[str],
    truncated: Sequence[bool] | None = None,
    kind: str = "math",
    timeout_s: float | None = None,
    thinking_open: Sequence[bool] | None = None,
    number_fallback: bool = False,
) -> list[GradeResult]:
    """Grade completions against gold answers. Never raises on model output.

    Args:
        completions: model outputs (the prompt not included).
        golds: gold answers, one per completion (already extracted, e.g. ``"72"`` or ``"\\frac{14}{3}"``).
        truncated: True where generation stopped without EOS; such completions are wrong (``truncated``).
        kind: ``"math"`` (math-verify equivalence) or ``"exact"`` (normal-form equality only).
        timeout_s: hard limit per math-verify comparison (default 5 s).
        thinking_open: True where the prompt itself opened ``<think>`` (see `frugalthink.tasks.prompts.opens_thinking`).
        number_fallback: accept a bare final number when nothing is boxed (tasks that declare it, e.g. GSM8K).

    >>> [r.reason for r in grade_many([r"\\boxed{0.5}", "no idea"], [r"\\frac{1}{2}", "3"])]
    ['correct', 'no_answer']
    """
    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers")
    if kind not in ("math", "exact"):
        raise ValueError(f"unknown grading kind {kind!r}: expected 'math' or 'exact'")
    truncated = truncated if truncated is not None else [False] * len(completions)
    thinking_open = thinking_open if thinking_open is not None else [False] * len(completions)
    results: list[GradeResult | None] = [None] * len(completions)
    slow: list[int] = []
    extracted_all: list[str | None] = []
    for i, (completion, gold, cut, opened) in enumerate(zip(completions, golds, truncated, thinking_open, strict=True)):
        extracted, why = extract(completion, thinking_open=opened, number_fallback=number_fallback)
        extracted_all.append(extracted)
        if cut:
            results[i] = GradeResult(False, extracted, "truncated")
        elif extracted is None:
            results[i] = GradeResult(False, None, why)
        elif _fast_equal(str(gold), extracted):
            results[i] = GradeResult(True, extracted, "correct")
        elif kind == "exact":
            results[i] = GradeResult(False, extracted, "mismatch")
        else:
            slow.append(i)
    if slow:
        verdicts = _pool().compare([(str(golds[i]), extracted_all[i]) for i in slow], timeout_s)
        for i, verdict in zip(slow, verdicts, strict=True):
            results[i] = GradeResult(verdict == "correct", extracted_all[i], verdict)
    return results  # type: ignore[return-value]


def _fast_equal(gold: str, pred: str) -> bool:
    g, p = normalize(gold), normalize(pred)
    if g == p:
        return True
    return "=" not in g and normalize(strip_assignment(pred)) == g


def grade(completion: str, gold: str, truncated: bool = False, kind: str = "math", thinking_open: bool = False,
          number_fallback: bool = False) -> GradeResult:
    """Grade a single completion; see `grade_many`."""
    return grade_many([completion], [gold], [truncated], kind=kind, thinking_open=[thinking_open],
                      number_fallback=number_fallback)[0]
