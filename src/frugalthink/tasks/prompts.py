"""The one prompt path: text (chat template + the task's message) -> token ids, and completion ids -> text.

Training (`frugalthink.rl.trainer`), HF evaluation and vLLM evaluation all call `encode_prompt`, and the reward and
evaluation both call `decode_completion`, so a problem is seen as the same ids and a completion graded from the same
text everywhere.
"""

from __future__ import annotations

import os
import sys

from frugalthink.tasks.answers import THINK_END, THINK_START
from frugalthink.tasks.base import Problem, Task


def build_prompt(tokenizer, task: Task, problem: Problem, length_target: int | None = None,
                 alpha: float | None = None, ratio: float | None = None) -> str:
    """The exact text fed to the model.

    With a chat template (R1-Distill-Qwen's, Qwen2.5's) the user turn is rendered with ``add_generation_prompt=True``;
    without one (the tiny model) the raw message is the prompt, said once per process on stderr when the task expects
    a template (`note_raw_prompt`: an instruct model asked that way may answer nothing). ``length_target`` writes a
    token budget into the request (L1's prompts, `Task.budget_message`); ``alpha`` writes the control line of an
    alpha-conditioned model in front of the message (`frugalthink.tasks.conditioning`); ``ratio`` the budget ratio
    of a budget-tier model (`Task.ratio_message`, `frugalthink.rl.budgets`).
    """
    if sum(x is not None for x in (alpha, length_target, ratio)) > 1:
        raise ValueError("a prompt carries one of a length target, an alpha and a budget ratio")
    if ratio is not None:
        message = task.ratio_message(problem, ratio)
    elif alpha is not None:
        message = task.control_message(problem, alpha)
    else:
        message = task.user_message(problem) if length_target is None else task.budget_message(problem, length_target)
    if task.uses_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    if task.uses_chat_template:
        note_raw_prompt(tokenizer)
    return message


_RAW_NOTED: list[str] = []  # the model of this process's one note, once it is said


def note_raw_prompt(tokenizer) -> None:
    """Say once per process (rank 0 of a launch), in one line on stderr, that prompts are the raw message."""
    if _RAW_NOTED or os.environ.get("RANK", "0") != "0":
        return
    name = getattr(tokenizer, "name_or_path", None) or "the model"
    _RAW_NOTED.append(name)
    print(f"note: {name} has no chat template; prompts are the raw message", file=sys.stderr, flush=True)


def _added_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts in front of a text when special tokens are added (e.g. ``[bos]``, or ``[]``)."""
    cache = getattr(tokenizer, "_frugalthink_prefix", None)
    if cache is None:
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        cache = full[: full.index(plain[0])] if plain and plain[0] in full else []
        try:
            tokenizer._frugalthink_prefix = cache
        except AttributeError:
            pass
    return cache


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt: the text's own tokens, with the tokenizer's leading special tokens (BOS)
    added once, only when the text does not already start with them (a template that writes ``{{bos_token}}``)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prefix = _added_prefix(tokenizer)
    if prefix and ids[: len(prefix)] != prefix:
        ids = prefix + ids
    return ids


def decode_completion(tokenizer, ids: list[int], eos_ids: set[int]) -> str:
    """The text that is graded: special tokens kept (``<think>`` stays visible), a final EOS dropped."""
    ids = list(ids)
    if ids and ids[-1] in eos_ids:
        ids = ids[:-1]
    return tokenizer.decode(ids, skip_special_tokens=False)


def opens_thinking(prompt_text: str) -> bool:
    """True when the prompt leaves a ``<think>`` open (templates that start the thinking block for the model)."""
    return prompt_text.rfind(THINK_START) > prompt_text.rfind(THINK_END)
