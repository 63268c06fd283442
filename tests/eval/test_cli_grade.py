"""`frugalthink grade` end to end, and its errors for bad input."""

import json
import subprocess
import sys

from frugalthink.cli import main


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_grade_writes_rows_with_verdicts(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(inp, [json.dumps({"id": 1, "answer": "0.5", "completion": r"\boxed{\frac{1}{2}}"}),
                json.dumps({"id": 2, "answer": "3", "completion": "no idea"}),
                json.dumps({"id": 3, "answer": "3", "completion": r"\boxed{3}", "truncated": True})])
    assert main(["grade", "--in", str(inp), "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert [r["correct"] for r in rows] == [True, False, False]
    assert [r["reason"] for r in rows] == ["correct", "no_answer", "truncated"]
    assert rows[0]["extracted"] == r"\frac{1}{2}"


def test_malformed_line_names_file_and_line(tmp_path, capsys):
    inp = tmp_path / "bad.jsonl"
    write(inp, [json.dumps({"answer": "1", "completion": "1"}), "{not json"])
    assert main(["grade", "--in", str(inp), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{inp}:2: malformed JSON" in err
    assert "Traceback" not in err


def test_missing_field_is_named(tmp_path, capsys):
    inp = tmp_path / "bad.jsonl"
    write(inp, [json.dumps({"answer": "1"})])
    assert main(["grade", "--in", str(inp), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "missing field 'completion'" in capsys.readouterr().err


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "frugalthink.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("grade", "eval", "train", "base"):
        assert name in out.stdout


def test_verbose_shows_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "frugalthink.cli", "--verbose", "grade", "--in", str(tmp_path / "nope.jsonl"),
         "--out", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert out.returncode != 0
    assert "Traceback" in out.stderr
