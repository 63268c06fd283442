"""Task registry: ``get_task("math500" | "gsm8k" | "aime24" | "amc23" | "chain" | "tally" | "jsonl:PATH" |
"hf:NAME")``."""

from __future__ import annotations

from frugalthink.tasks.base import PAPER_INSTRUCTION, Problem, Task
from frugalthink.util.errors import UserError

BENCHMARKS = ("math500", "gsm8k", "aime24", "amc23")
# Paper protocol (temperature 0.6): samples per problem and generation budget, per task.
DEFAULT_SAMPLES = {"aime24": 10, "amc23": 10, "math500": 3, "gsm8k": 1, "chain": 1, "tally": 1}
DEFAULT_MAX_NEW_TOKENS = {"chain": 256, "tally": 384}
EMBEDDED = ("chain", "tally")
MATH_MAX_NEW_TOKENS = 32768


def get_task(spec: str, **options) -> Task:
    """Build a task from its spec and task options; an option the task does not take is an error naming it."""
    from frugalthink.tasks.math_benchmarks import HubTask, JsonlTask, benchmark_task

    if spec in BENCHMARKS:
        return _build(benchmark_task, spec, spec, options)
    if spec in EMBEDDED:
        return _build(_embedded_task, spec, spec, options)
    if spec.startswith("jsonl:"):
        return _build(JsonlTask, spec, spec[len("jsonl:") :], options)
    if spec.startswith("hf:"):
        return _build(HubTask, spec, spec[len("hf:") :], options)
    raise UserError(f"unknown task {spec!r}: use one of {', '.join(BENCHMARKS)}, chain, tally, jsonl:PATH or hf:NAME")


def _embedded_task(spec: str, config: dict | None = None, train_size: int = 4000) -> Task:
    """``chain`` or ``tally`` with its settings (``config``: fields of its config dataclass)."""
    from frugalthink.config import from_dict
    from frugalthink.tasks.chain import ChainConfig, ChainTask
    from frugalthink.tasks.tally import TallyConfig, TallyTask

    config_cls, task_cls = {"chain": (ChainConfig, ChainTask), "tally": (TallyConfig, TallyTask)}[spec]
    if config is not None and not isinstance(config, dict):
        raise UserError(f"task {spec}: option config must be a mapping of {spec} settings, got {config!r}")
    cfg = from_dict(config_cls, config, where="task_options.config") if config is not None else None
    return task_cls(cfg, train_size=train_size)


def _build(make, spec: str, source: str, options: dict) -> Task:
    """``make(source, **options)``; the options it takes are its parameters after the first (``name`` is set by
    the registry), so an unknown one is reported by name instead of as a Python TypeError."""
    import inspect

    accepted = [p for p in list(inspect.signature(make).parameters)[1:] if p != "name"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"task {spec}: unknown task option(s) {', '.join(unknown)} (it takes: {', '.join(accepted)})")
    return make(source, **options)


__all__ = ["PAPER_INSTRUCTION", "Problem", "Task", "get_task", "DEFAULT_SAMPLES", "DEFAULT_MAX_NEW_TOKENS"]
