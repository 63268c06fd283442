"""Task registry: ``get_task("math500" | "gsm8k" | "aime24" | "amc23" | "chain" | "jsonl:PATH" | "hf:NAME")``."""

from __future__ import annotations

from frugalthink.errors import UserError
from frugalthink.tasks.base import PAPER_INSTRUCTION, Problem, Task

BENCHMARKS = ("math500", "gsm8k", "aime24", "amc23")
# Paper protocol (temperature 0.6): samples per problem and generation budget, per task.
DEFAULT_SAMPLES = {"aime24": 10, "amc23": 10, "math500": 3, "gsm8k": 1, "chain": 1}
DEFAULT_MAX_NEW_TOKENS = {"chain": 256}
MATH_MAX_NEW_TOKENS = 32768


def get_task(spec: str, **options) -> Task:
    """Build a task from its spec. ``jsonl:PATH`` accepts options problem_field, answer_field, id_field, level_field."""
    from frugalthink.tasks.chain import ChainTask
    from frugalthink.tasks.math_benchmarks import HubTask, JsonlTask, benchmark_task

    if spec in BENCHMARKS:
        unknown = set(options) - {"message"}
        if unknown:
            raise UserError(f"task {spec}: unknown task option(s) {', '.join(sorted(unknown))} (it takes: message)")
        return benchmark_task(spec, **options)
    if spec == "chain":
        from frugalthink.config import from_dict
        from frugalthink.tasks.chain import ChainConfig

        unknown = sorted(set(options) - {"config", "train_size"})
        if unknown:
            raise UserError(f"task chain: unknown task option(s) {', '.join(unknown)} (it takes: config, train_size)")
        cfg = options.get("config")
        if isinstance(cfg, dict):
            cfg = from_dict(ChainConfig, cfg, where="task_options.config")
        elif cfg is not None:
            raise UserError(f"task chain: option config must be a mapping of chain settings, got {cfg!r}")
        return ChainTask(cfg, **{k: v for k, v in options.items() if k != "config"})
    if spec.startswith("jsonl:"):
        return _build(JsonlTask, spec, spec[len("jsonl:") :], options)
    if spec.startswith("hf:"):
        return _build(HubTask, spec, spec[len("hf:") :], options)
    raise UserError(f"unknown task {spec!r}: use one of {', '.join(BENCHMARKS)}, chain, jsonl:PATH or hf:NAME")


def _build(cls, spec: str, source: str, options: dict) -> Task:
    """``cls(source, **options)`` with unknown options reported by name (not as a Python TypeError)."""
    import inspect

    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "path", "dataset", "name")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"task {spec}: unknown task option(s) {', '.join(unknown)} (it takes: {', '.join(accepted)})")
    return cls(source, **options)


__all__ = ["PAPER_INSTRUCTION", "Problem", "Task", "get_task", "DEFAULT_SAMPLES", "DEFAULT_MAX_NEW_TOKENS"]
