"""Prompt building: the task's user message, wrapped in the model's chat template when it has one."""

from __future__ import annotations

from frugalthink.tasks.base import Problem, Task


def build_prompt(tokenizer, task: Task, problem: Problem) -> str:
    """The exact text fed to the model (and to TRL as a plain-text prompt), so training and evaluation match.

    With a chat template (e.g. R1-Distill-Qwen's, which opens ``<think>``) the user turn is rendered with
    ``add_generation_prompt=True``; without one (the tiny model) the raw message is the prompt.
    """
    message = task.user_message(problem)
    if task.uses_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return message
