"""Output folders: a command writes only into a folder that is new, empty, or already one of its own.

A folder is "ours" when it holds the marker file the command writes first (its resolved config). Anything else is
refused before a byte is written, so no command can delete or overwrite a user's files.
"""

from __future__ import annotations

from pathlib import Path

from frugalthink.util.errors import UserError


def claim(out: str | Path, marker: str) -> Path:
    """Create ``out`` or accept it when empty or marked by ``marker``; refuse any other existing path.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "mine.txt").write_text("x")
    1
    >>> claim(d, "frugalthink_run.json")
    Traceback (most recent call last):
    ...
    frugalthink.util.errors.UserError: ...
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and not (out / marker).exists() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty and holds no {marker}, so it is not a frugalthink output of "
                        "this kind; nothing was written. Use a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out
