"""Prompt building: the task's user message, wrapped in the model's chat template when it has one."""

from __future__ import annotations

from frugalthink.tasks.base import Problem, Task


def build_prompt(tokenizer, task: Task, problem: Problem, length_target: int | None = None) -> str:
    """The exact text fed to the model (and to TRL as a plain-text prompt), so training and evaluation match.

    With a chat template (e.g. R1-Distill-Qwen's, which opens ``<think>``) the user turn is rendered with
    ``add_generation_prompt=True``; without one (the tiny model) the raw message is the prompt. ``length_target``
    writes a token budget into the request (L1's prompts, `Task.budget_message`).
    """
    message = task.user_message(problem) if length_target is None else task.budget_message(problem, length_target)
    if task.uses_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return message
