"""Math benchmarks: MATH500, GSM8K, AIME 2024, AMC 2023 (shipped copies), a user's JSONL file, or a HF dataset."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from frugalthink.tasks.answers import last_boxed
from frugalthink.tasks.base import DEFAULT_MESSAGE, Problem, Task
from frugalthink.util.errors import UserError
from frugalthink.util.jsonl import iter_jsonl, require


def check_message(message: str, where: str = "task_options.message") -> str:
    """A user-message template must name {question} and may name {instruction}; nothing else."""
    try:
        message.format(question="q", instruction="i")
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"{where}: {message!r} is not a valid template ({exc}); use {{question}} and {{instruction}}") from exc
    if "{question}" not in message:
        raise UserError(f"{where}: {message!r} must contain {{question}}")
    return message


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


_NOTED: set[str] = set()


def shipped_file(benchmark: str, split: str = "test") -> Path:
    return Path(str(resources.files("frugalthink") / "data" / benchmark / f"{split}.jsonl"))


def gold_value(value, where: str) -> str:
    """A gold answer must be text or a number; lists, objects, booleans and null are input errors."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UserError(f"{where}: the answer must be text or a number, got {json.dumps(value)[:60]}")
    if isinstance(value, str) and not value.strip():
        raise UserError(f"{where}: the answer is empty")
    return str(value)


class JsonlTask(Task):
    """Problems from a JSON Lines file. Field names are options (``problem_field``, ``answer_field``, ``id_field``,
    ``level_field``); ``split_field`` names a column holding each row's split (``train``/``test``/...). Without it
    the file has no splits: every split reads the whole file, and a note says so."""

    def __init__(
        self,
        path: str | Path,
        name: str = "jsonl",
        problem_field: str = "problem",
        answer_field: str = "answer",
        id_field: str | None = None,
        level_field: str | None = None,
        message: str = DEFAULT_MESSAGE,
        number_fallback: bool = False,
        split_field: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.split_field = split_field
        self.message, self.number_fallback = check_message(message), bool(number_fallback)
        self.problem_field, self.answer_field = problem_field, answer_field
        self.id_field, self.level_field = id_field, level_field

    def split_file(self, split: str) -> Path:
        """The file that holds ``split``: here the one file, whatever the split."""
        return self.path

    def load(self, split: str = "test") -> list[Problem]:
        path = self.split_file(split)
        if self.split_field is None and self.name == "jsonl" and split not in _NOTED:
            _NOTED.add(split)
            print(f"note: {path} has no split_field, so split {split!r} reads the whole file "
                  "(task option split_field names a column that splits it)")
        problems, seen = [], set()
        for lineno, row in iter_jsonl(path):
            if self.split_field is not None:
                part = require(row, self.split_field, path, lineno)
                seen.add(str(part))
                if part != split:
                    continue
            problems.append(self._problem(row, path, lineno, len(problems)))
        if not problems:
            where = (f" with {self.split_field} = {split!r} (its {self.split_field} values: "
                     f"{', '.join(sorted(seen)) or 'none'})" if self.split_field else "")
            raise UserError(f"{path}: no problems in file{where}")
        return problems

    def _problem(self, row: dict, path: Path, lineno: int, index: int) -> Problem:
        """Row ``lineno`` as a `Problem` (id ``index`` without an id field); a bad field names file, line and field."""
        question = require(row, self.problem_field, path, lineno)
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{path}:{lineno}: field '{self.problem_field}' must be non-empty text")
        answer = gold_value(require(row, self.answer_field, path, lineno),
                            f"{path}:{lineno}: field '{self.answer_field}'")
        pid = str(require(row, self.id_field, path, lineno)) if self.id_field else str(index)
        level = row.get(self.level_field) if self.level_field else None
        return Problem(pid, str(question), gold_from_text(answer), level)


class BenchmarkTask(JsonlTask):
    """A shipped benchmark: one file per split in ``frugalthink/data/<name>/`` (only ``test`` ships); a split without
    a file is refused, never read from another."""

    def __init__(self, name: str, message: str = DEFAULT_MESSAGE, **fields) -> None:
        super().__init__(shipped_file(name), name=name, message=message, **fields)
        self.splits = tuple(sorted(p.stem for p in self.path.parent.glob("*.jsonl")))

    def split_file(self, split: str) -> Path:
        self.check_split(split)
        return shipped_file(self.name, split)


def benchmark_task(name: str, message: str = DEFAULT_MESSAGE) -> BenchmarkTask:
    """A shipped benchmark. GSM8K's references end in ``#### N``, so it declares the bare-number fallback."""
    fields = {
        "math500": dict(problem_field="problem", id_field="unique_id", level_field="level"),
        "gsm8k": dict(problem_field="question", number_fallback=True),
        "aime24": dict(problem_field="problem", id_field="id"),
        "amc23": dict(problem_field="problem", id_field="id"),
    }[name]
    return BenchmarkTask(name, message=message, **fields)


class HubTask(Task):
    """A Hugging Face dataset (needs the hub, or a local datasets cache).

    ``gold="boxed"`` (the paper's training data, whose answer field is a worked solution): the gold is the last
    ``\\boxed{}`` of the answer field, rows without a parseable one are dropped and counted; ``gold="text"``: the
    field as it is (GSM8K's ``#### N`` and plain numbers normalised). Rows keep the dataset's order (training takes
    the first ``num_prompts`` as the official run does; TRL's sampler then shuffles them with the recipe's seed).
    """

    def __init__(self, dataset: str, split: str | None = None, problem_field="problem", answer_field="answer",
                 config=None, gold: str = "text", message: str = DEFAULT_MESSAGE,
                 number_fallback: bool = False):
        if gold not in ("text", "boxed"):
            raise UserError(f"task_options.gold: {gold!r} is not 'text' or 'boxed'")
        self.name = f"hf:{dataset}"
        self.dataset, self.split, self.config = dataset, split, config
        self.problem_field, self.answer_field = problem_field, answer_field
        self.gold = gold
        self.message, self.number_fallback = check_message(message), bool(number_fallback)

    def load(self, split: str | None = None) -> list[Problem]:
        from datasets import load_dataset

        if self.split and split and split != self.split:
            print(f"note: {self.name}: task option split={self.split!r} is read, not split {split!r}", file=sys.stderr)
        try:
            # A split named in the task options wins over the command's (a recipe's train_split, eval's --split).
            ds = load_dataset(self.dataset, self.config, split=self.split or split or "train")
        except Exception as exc:  # noqa: BLE001 - network/hub errors become one clear line
            raise UserError(f"could not load dataset {self.dataset!r}: {str(exc).splitlines()[0]}") from exc
        return self.problems_from_rows(ds, ds.column_names)

    def problems_from_rows(self, rows, columns) -> list[Problem]:
        """Rows (dicts) -> problems, under this task's gold rule; prints how many rows were dropped and why."""
        for f in (self.problem_field, self.answer_field):
            if f not in columns:
                raise UserError(f"dataset {self.dataset!r}: missing field '{f}' (has {list(columns)})")
        problems, dropped = [], 0
        for i, r in enumerate(rows):
            if self.gold == "boxed":
                gold = last_boxed(str(r[self.answer_field]))
                if not gold:
                    dropped += 1
                    continue
            else:
                gold = gold_from_text(gold_value(r[self.answer_field],
                                                  f"dataset {self.dataset!r}, row {i}, field '{self.answer_field}'"))
            problems.append(Problem(str(i), str(r[self.problem_field]), gold, r.get("level")))
        if dropped:
            print(f"{self.name}: dropped {dropped} of {dropped + len(problems)} rows whose "
                  f"'{self.answer_field}' has no parseable \\boxed{{}} answer")
        if not problems:
            raise UserError(f"dataset {self.dataset!r}: no usable rows")
        return problems
