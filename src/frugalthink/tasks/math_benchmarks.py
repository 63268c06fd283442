"""Math benchmarks: MATH500, GSM8K, AIME 2024, AMC 2023 (shipped copies), a user's JSONL file, or a HF dataset."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from frugalthink.answers import last_boxed
from frugalthink.errors import UserError
from frugalthink.jsonl import iter_jsonl, require
from frugalthink.tasks.base import Problem, Task


def gold_from_text(answer) -> str:
    """Normalise a stored gold answer: GSM8K's ``... #### 1,234`` -> ``1234``; AMC's ``27.0`` -> ``27``; a worked
    solution with ``\\boxed{...}`` (NuminaMath, MATH) -> the boxed content."""
    text = str(answer).strip()
    if "\\boxed" in text:
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    try:
        value = float(text)
        if value.is_integer() and "." in text:
            text = str(int(value))
    except ValueError:
        pass
    return text


def shipped_file(benchmark: str) -> Path:
    return Path(str(resources.files("frugalthink") / "data" / benchmark / "test.jsonl"))


class JsonlTask(Task):
    """Problems from a JSON Lines file; field names are configurable."""

    def __init__(
        self,
        path: str | Path,
        name: str = "jsonl",
        problem_field: str = "problem",
        answer_field: str = "answer",
        id_field: str | None = None,
        level_field: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.problem_field, self.answer_field = problem_field, answer_field
        self.id_field, self.level_field = id_field, level_field

    def load(self, split: str = "test") -> list[Problem]:
        problems = []
        for lineno, row in iter_jsonl(self.path):
            question = require(row, self.problem_field, self.path, lineno)
            answer = require(row, self.answer_field, self.path, lineno)
            pid = str(require(row, self.id_field, self.path, lineno)) if self.id_field else str(len(problems))
            level = row.get(self.level_field) if self.level_field else None
            problems.append(Problem(pid, str(question), gold_from_text(answer), level))
        if not problems:
            raise UserError(f"{self.path}: no problems in file")
        return problems


def benchmark_task(name: str) -> JsonlTask:
    fields = {
        "math500": dict(problem_field="problem", id_field="unique_id", level_field="level"),
        "gsm8k": dict(problem_field="question"),
        "aime24": dict(problem_field="problem", id_field="id"),
        "amc23": dict(problem_field="problem", id_field="id"),
    }[name]
    return JsonlTask(shipped_file(name), name=name, **fields)


class HubTask(Task):
    """A Hugging Face dataset (needs the hub, or a local datasets cache)."""

    def __init__(self, dataset: str, split: str = "test", problem_field="problem", answer_field="answer", config=None):
        self.name = f"hf:{dataset}"
        self.dataset, self.split, self.config = dataset, split, config
        self.problem_field, self.answer_field = problem_field, answer_field

    def load(self, split: str | None = None) -> list[Problem]:
        from datasets import load_dataset

        try:
            ds = load_dataset(self.dataset, self.config, split=split or self.split)
        except Exception as exc:  # noqa: BLE001 - network/hub errors become one clear line
            raise UserError(f"could not load dataset {self.dataset!r}: {exc}") from exc
        for f in (self.problem_field, self.answer_field):
            if f not in ds.column_names:
                raise UserError(f"dataset {self.dataset!r}: missing field '{f}' (has {ds.column_names})")
        return [
            Problem(str(i), str(r[self.problem_field]), gold_from_text(r[self.answer_field]), r.get("level"))
            for i, r in enumerate(ds)
        ]
