"""Answer extraction from model completions: pure string code, no torch, no sympy.

The grader (`frugalthink.grading`) calls `extract_answer` on every completion, for rewards and evaluation alike.

Rules, in order:
1. If the completion contains ``</think>``, only the text after the last ``</think>`` is graded (R1-style models
   put their final answer there). A completion that opens ``<think>`` and never closes it is still thinking: it
   has no answer. Otherwise the whole completion is graded.
2. The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) wins, braces matched.
3. Fallbacks for GSM8K-style text: ``#### N``, then "answer is N", then the last number in the text.
"""

from __future__ import annotations

import re

THINK_START, THINK_END = "<think>", "</think>"
_BOX_OPENERS = ("\\boxed", "\\fbox")
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_HASHES = re.compile(r"####\s*(" + _NUMBER + r")")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*\$?\s*(" + _NUMBER + r")", re.IGNORECASE)
_LAST_NUMBER = re.compile(_NUMBER)


def strip_thinking(text: str) -> str:
    """The part of ``text`` after the last ``</think>``; ``""`` if thinking was opened and never closed."""
    idx = text.rfind(THINK_END)
    if idx < 0:
        return "" if THINK_START in text else text
    return text[idx + len(THINK_END) :]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}`` in ``text``; None when absent or unclosed.

    >>> last_boxed(r"so \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    start = max(text.rfind(opener) for opener in _BOX_OPENERS)
    if start < 0:
        return None
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # "\boxed 5" form: take the next token
        m = re.match(r"[^\s$.,]+", text[i:])
        return m.group(0) if m else None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None  # unbalanced: the answer was cut off


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


def extract_answer(completion: str) -> str | None:
    """Final answer of a completion (see module docstring), or None when it has none."""
    tail = strip_thinking(completion)
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    return final_number(tail)


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
    s = answer
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _DEGREES.sub("", s).replace("\\%", "").replace("%", "")
    s = _THOUSANDS.sub("", s)
    return s.rstrip(".")


def strip_assignment(answer: str) -> str:
    """``x = 7`` -> ``7`` (a single variable on the left); anything else is returned unchanged."""
    m = _ASSIGN.match(answer.replace(" ", ""))
    return m.group(1) if m else answer
