"""What the integrations share: their arguments checked in one place, and the `LengthReward` they build from them."""

from __future__ import annotations

from collections.abc import Iterable

from frugalthink.rl import rewards as R
from frugalthink.rl.reward_fn import LengthReward
from frugalthink.tasks import Task, get_task

BUCKETS = {"low", "medium", "high"}


def task_of(task, task_options: dict | None = None) -> Task:
    """A task from its name (`frugalthink.tasks.get_task`) or a `Task` as it is."""
    if isinstance(task, str):
        return get_task(task, **(task_options or {}))
    if isinstance(task, Task):
        if task_options:
            raise ValueError("task_options: only with a task given by name (a Task object carries its own options)")
        return task
    raise TypeError(f"task must be a task name (e.g. 'gsm8k') or a frugalthink Task, got {type(task).__name__}")


def eos_ids_of(eos_token_ids, tokenizer) -> set[int]:
    """The ids that end a completion: given, else the tokenizer's EOS. A completion not ending in one is truncated."""
    if eos_token_ids is None:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("eos_token_ids: needed (or a tokenizer with an EOS token) to tell a finished completion "
                             "from a truncated one")
        eos_token_ids = [eos]
    ids = [eos_token_ids] if isinstance(eos_token_ids, int) else list(eos_token_ids)
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError(f"eos_token_ids must be a token id or a non-empty list of them, got {eos_token_ids!r}")
    return set(ids)


def reward_options(reward: str, options: dict | None, max_completion_length: int | None) -> dict:
    """The reward's options, the papers' defaults filled in (`frugalthink.rl.rewards.resolve_options`, the recipe's rule:
    options given as a share of the generation cap are taken from ``max_completion_length``)."""
    if reward not in R.REWARDS:
        raise ValueError(f"reward: unknown {reward!r} (one of {', '.join(R.REWARDS)})")
    options = dict(options or {})
    spec = R.REWARDS[reward]
    allowed = set(spec.defaults) | ({"bucket_targets"} if reward in R.MONITORED else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"options: {', '.join(unknown)} not an option of reward {reward!r} "
                         f"(options: {', '.join(sorted(allowed)) or 'none'})")
    missing = [name for name in spec.from_cap if options.get(name) is None]
    if missing and max_completion_length is None:
        raise ValueError(f"reward {reward!r}: option {missing[0]} defaults to a share of the generation cap: pass "
                         f"max_completion_length (the trainer's) or options={{{missing[0]!r}: ...}}")
    if max_completion_length is not None and (not isinstance(max_completion_length, int) or max_completion_length < 1):
        raise ValueError(f"max_completion_length must be a positive token count, got {max_completion_length!r}")
    resolved = R.resolve_options(reward, options, max_completion_length or 1)
    if reward in R.MONITORED:  # Laser-D/DE: our trainer's monitor moves the targets; here they are given and fixed
        targets = resolved.get("bucket_targets")
        if not isinstance(targets, dict) or set(targets) != BUCKETS:
            raise ValueError(f"reward {reward!r}: options.bucket_targets must give the target length of each "
                             f"difficulty bucket, {{'low': n, 'medium': n, 'high': n}} (no monitor runs here)")
    return resolved


def make_length_reward(task, alpha: float = 0.2, reward: str = "efficiency", options: dict | None = None,
                       num_generations: int = 8, tokenizer=None, eos_token_ids: Iterable[int] | int | None = None,
                       max_completion_length: int | None = None, task_options: dict | None = None) -> LengthReward:
    """`frugalthink.rl.reward_fn.LengthReward` from an integration's arguments, each checked with a one-line error."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be a number in [0, 1), got {alpha!r}")
    if isinstance(num_generations, bool) or not isinstance(num_generations, int) or num_generations < 2:
        raise ValueError(f"num_generations must be an integer >= 2 (the samples per prompt), got {num_generations!r}")
    resolved = reward_options(reward, options, max_completion_length)
    return LengthReward(task_of(task, task_options), float(alpha), eos_ids_of(eos_token_ids, tokenizer),
                        reward=reward, options=resolved, tokenizer=tokenizer, num_generations=num_generations)
