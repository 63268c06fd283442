"""Cells of the relative tables (family, compare, side by side): one formatting of "vs the base" for all."""

from __future__ import annotations


def change(x: float | None, ref: float | None) -> str:
    """``x`` relative to ``ref`` as a signed percentage change, ``""`` when either is missing or ``ref`` is 0.

    >>> change(43.8, 122.1), change(None, 1.0)
    ('-64.1%', '')
    """
    if x is None or not ref:
        return ""
    return f"{100 * (x / ref - 1):+.1f}%"


def share(x: float | None, ref: float | None) -> str:
    """``x`` as a percentage of ``ref`` (accuracy relative to the base), ``"n/a"`` without a reference.

    >>> share(0.996, 0.994)
    '100.2%'
    """
    if x is None or not ref:
        return "n/a"
    return f"{100 * x / ref:.1f}%"


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table of strings.

    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
