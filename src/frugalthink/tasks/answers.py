"""Answer extraction from model completions: pure string code, no torch, no sympy.

The grader (`frugalthink.tasks.grading`) calls `extract` on every completion, for rewards and evaluation alike. The rules
are strict on purpose: a length penalty rewards any shortcut the grader leaves open, and RL finds it.

1. Thinking must be closed. When the prompt or the completion opens ``<think>``, only the text after the last
   ``</think>`` is the answer region; if thinking never closes, the completion is wrong (``unfinished_thinking``),
   whatever it boxed inside. Without any thinking block the whole completion is the answer region.
2. The answer is a ``\\boxed{...}`` (or ``\\fbox{...}``) in the answer region. An empty box is wrong
   (``empty_box``); boxes whose contents differ after normalisation (spacing, ``\\left``, ``x =`` ...) are hedging
   and wrong (``hedging``); the same answer boxed twice (in a sentence and again in a display) is fine. Two
   notations of one value (``\\frac12`` and ``0.5``) count as hedging: box the answer once.
3. Only tasks that declare ``number_fallback`` (GSM8K-style references) fall back, when no box is present, to
   ``#### N``, then "answer is N", then the last number of the answer region.
"""

from __future__ import annotations

import re

THINK_START, THINK_END = "<think>", "</think>"
_BOX_OPENERS = ("\\boxed", "\\fbox")
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_HASHES = re.compile(r"####\s*(" + _NUMBER + r")")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*\$?\s*(" + _NUMBER + r")", re.IGNORECASE)
_LAST_NUMBER = re.compile(_NUMBER)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}`` in ``text``; None when absent or unclosed.

    >>> last_boxed(r"so \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    start = max(text.rfind(opener) for opener in _BOX_OPENERS)
    return None if start < 0 else _first_box(text[start:])


def final_number(text: str) -> str | None:
    """GSM8K-style fallback: ``#### N``, then "answer is N", then the last number; commas dropped."""
    for pattern in (_HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].replace(",", "")
    found = _LAST_NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace(",", "").rstrip(".")


def all_boxed(text: str) -> list[str | None]:
    """Contents of every ``\\boxed{...}``/``\\fbox{...}`` in ``text``, in order (None for an unclosed one)."""
    found, i = [], 0
    while True:
        starts = [j for j in (text.find(o, i) for o in _BOX_OPENERS) if j >= 0]
        if not starts:
            return found
        found.append(_first_box(text[min(starts) :]))
        i = min(starts) + 5


def _first_box(text: str) -> str | None:
    """Content of the box that ``text`` starts with (``\\boxed{..}``, ``\\boxed 5``, ``\\fbox{..}``)."""
    i = 6 if text.startswith("\\boxed") else 5
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # "\boxed 3.5." form: the next token, a sentence's full stop dropped
        m = re.match(r"[^\s$,]+", text[i:])
        return m.group(0).rstrip(".") or None if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def extract(completion: str, thinking_open: bool = False, number_fallback: bool = False) -> tuple[str | None, str]:
    """The final answer of a completion and why there is none: ``(answer, "ok")`` or ``(None, reason)`` with reason
    one of ``unfinished_thinking``, ``empty_box``, ``hedging``, ``no_answer`` (module docstring).

    ``thinking_open``: the prompt itself opened ``<think>`` (so the completion must close it).

    >>> extract(r"<think>maybe \\boxed{3}</think>So \\boxed{4}.")
    ('4', 'ok')
    >>> extract(r"still thinking, maybe \\boxed{3}", thinking_open=True)
    (None, 'unfinished_thinking')
    >>> extract(r"</think>\\boxed{3} or \\boxed{4}")
    (None, 'hedging')
    """
    idx = completion.rfind(THINK_END)
    if idx >= 0:
        region = completion[idx + len(THINK_END) :]
        if THINK_START in region:  # thinking re-opened after it closed, and never closed again
            return None, "unfinished_thinking"
    elif thinking_open or THINK_START in completion:
        return None, "unfinished_thinking"
    else:
        region = completion
    boxes = all_boxed(region)
    if boxes:
        if any(b is None for b in boxes):
            return None, "no_answer"  # a box left unclosed: the answer was cut off
        if any(not b for b in boxes):
            return None, "empty_box"
        if len({normalize(strip_assignment(b)) for b in boxes}) > 1:
            return None, "hedging"
        return boxes[-1], "ok"
    if number_fallback:
        number = final_number(region)
        if number is not None:
            return number, "ok"
    return None, "no_answer"


_DROP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "$", " ", "\n", "\t")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\{?\\circ\}?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ASSIGN = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?=(?!=)(.+)$")


def normalize(answer: str) -> str:
    """Canonical string form used for the grader's exact-match fast path.

    It only removes notation that cannot change the value (spacing, ``\\left``, ``\\text{}`` wrappers, degree signs,
    thousands separators, ``dfrac``), so equal normal forms imply equal answers.

    >>> normalize(r"\\left( 3, \\dfrac{\\pi}{2} \\right)")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    s = _THOUSANDS.sub("", answer)  # before spaces go: "1, 100" is a list, "1,100" a number
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _DEGREES.sub("", s).replace("\\%", "").replace("%", "")
    return s.rstrip(".")


def strip_assignment(answer: str) -> str:
    """``x = 7`` -> ``7`` (a single variable on the left); anything else is returned unchanged."""
    m = _ASSIGN.match(answer.replace(" ", ""))
    return m.group(1) if m else answer
