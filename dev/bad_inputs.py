"""Print what each bad input of tests/test_bad_input.py gets from the CLI, as a markdown table (dev/LOG.md).

Usage: python dev/bad_inputs.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_bad_input as T  # noqa: E402

from frugalthink.cli import main  # noqa: E402


def run(argv: list[str], tmp: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([a.replace("{t}", str(tmp)) for a in argv])
        except SystemExit as exc:
            code = exc.code
    lines = [x for x in err.getvalue().strip().splitlines() if x.strip()]
    return code, (lines[-1] if lines else "").replace(str(tmp), "T")


def main_() -> None:
    cases = [(" ".join(a), a) for a, _ in T.test_bad_numbers_are_refused_by_the_parser.pytestmark[0].args[1]]
    cases += [(name, argv) for name, (argv, _) in sorted(T.CASES.items())]
    print("| input | exit | what it prints |\n| --- | --- | --- |")
    for name, argv in cases:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            T._write(tmp / "d.jsonl", json.dumps({"problem": "1+2?", "answer": "3", "completion": "\\boxed{3}"}) + "\n")
            T._write(tmp / "bin.jsonl", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
            T._write(tmp / "null.jsonl", json.dumps({"answer": None, "completion": "\\boxed{None}"}) + "\n")
            (tmp / "ev").mkdir()
            T._write(tmp / "ev" / "summary.json", json.dumps({"accuracy": 1.0, "mean_tokens": 3}))
            code, line = run(argv, tmp)
        print(f"| `{name.replace('{t}', 'T')}` | {code} | `{line}` |")


if __name__ == "__main__":
    main_()
