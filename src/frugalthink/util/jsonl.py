"""JSON Lines reading and writing with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from frugalthink.util.errors import UserError


def read_json_object(path: str | Path, required: tuple[str, ...], missing_hint: str) -> dict:
    """A JSON object from ``path`` with ``required`` keys; errors name the file (and line) and say what to run."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found ({missing_hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise UserError(f"{path}: missing field '{key}'")
    return data


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for each non-empty line; a bad line raises `UserError` naming file:line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a JSON Lines file")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in _lines(fh, path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def _lines(fh, path: Path):
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):  # noqa: B007 - lineno is read in the except clause
            yield lineno, line
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}:{lineno + 1}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        "is it a binary or differently encoded file?") from None


def read_jsonl_tolerant(path: str | Path) -> list[dict]:
    """Rows of a file this program appends to; a torn last line (a kill mid-write) is dropped, not fatal."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    # errors="replace": a kill can also cut a multi-byte character; that torn line is dropped below anyway.
    # Split on "\n" only: records are written with ensure_ascii=False, and str.splitlines() would also split inside a
    # completion at U+2028, U+2029 or U+0085.
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):
                break  # interrupted write: the only line we may lose
            raise UserError(f"{path}:{lineno}: malformed JSON in the middle of the file") from None
    return rows


def require(row: dict, field: str, path: str | Path, lineno: int):
    """``row[field]`` or a `UserError` that names the field, file and line."""
    if field not in row:
        raise UserError(f"{path}:{lineno}: missing field '{field}' (fields present: {', '.join(sorted(row))})")
    return row[field]


def drop_torn_tail(path: str | Path) -> None:
    """Make the next append start on a line of its own: a half-written last line (a kill in the middle of a write)
    is cut off; a complete last record that lost only its newline gets the newline back (it was counted as done)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":  # the usual case: only the last byte is read
            return
        fh.seek(0)
        data = fh.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:].decode("utf-8"))
            fh.write(b"\n")
        except (json.JSONDecodeError, UnicodeDecodeError):
            fh.truncate(start)


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows and flush to disk, so a crash loses at most what was not yet written; a torn last line left by
    an earlier crash is dropped first (`drop_torn_tail`)."""
    drop_torn_tail(path)
    with Path(path).open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    tmp = Path(str(path) + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
