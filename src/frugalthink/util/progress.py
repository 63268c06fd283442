"""Progress display for long work (rich), quiet when output is not a terminal but still logging milestones."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, total: int):
    """Yields ``update(done, note="")``. On a terminal: a rich bar. Otherwise: a line every ~10%."""
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                      transient=False) as prog:
            task = prog.add_task(description, total=total, note="")

            def update(done: int, note: str = "") -> None:
                prog.update(task, completed=done, note=note)

            yield update
    else:
        t0 = time.perf_counter()
        state = {"next": 0}

        def update(done: int, note: str = "") -> None:
            if done >= state["next"] or done == total:
                pct = 100 * done / max(1, total)
                print(f"[{description}] {done}/{total} ({pct:.0f}%) {time.perf_counter() - t0:.0f}s {note}",
                      file=sys.stderr, flush=True)
                state["next"] = done + max(1, total // 10)

        yield update
