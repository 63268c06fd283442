"""What a task is: data (a list of `Problem`), a prompt builder and the grader kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from frugalthink.tasks.grading import GradeResult, grade_many
from frugalthink.util.errors import UserError

PAPER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# The user message: ours puts the question first (the official training script writes the instruction first:
# "{instruction} Question: {question}", set as task option ``message`` in the R1 recipes).
DEFAULT_MESSAGE = "{question}\n{instruction}"


@dataclass
class Problem:
    """One problem. ``level`` is the difficulty bucket used in per-level tables; ``oracle_tokens`` is the
    length of the minimal correct completion when the task knows it (synthetic tasks)."""

    id: str
    question: str
    answer: str
    level: int | str | None = None
    oracle_tokens: int | None = None
    meta: dict = field(default_factory=dict)


class Task:
    """Base class. Subclasses set ``name`` and implement `load`."""

    name: str = "task"
    grading_kind: str = "math"  # "math" (math-verify) or "exact"
    uses_chat_template: bool = True
    instruction: str = PAPER_INSTRUCTION
    message: str = DEFAULT_MESSAGE
    number_fallback: bool = False  # grade a bare final number when nothing is boxed (GSM8K-style references)
    splits: tuple[str, ...] | None = None  # the splits `load` serves; None: the data says (a file's column, the hub)

    def load(self, split: str = "test") -> list[Problem]:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        """Refuse a split this task lacks, naming the ones it has (cheap: called before a model loads)."""
        if self.splits is not None and split not in self.splits:
            raise UserError(f"{self.name}: unknown split {split!r} (it has: {', '.join(self.splits)})")

    def user_message(self, problem: Problem) -> str:
        """The text the user asks; wrapped in the model's chat template by `frugalthink.tasks.prompts`."""
        if not self.instruction:
            return problem.question
        return self.message.format(question=problem.question, instruction=self.instruction)

    def budget_message(self, problem: Problem, tokens: int) -> str:
        """The request with a token budget in it, as L1 (Aggarwal & Welleck, 2025) phrases it for L1-Max."""
        return f"{self.user_message(problem)}\nThink for maximum {tokens} tokens."

    def control_message(self, problem: Problem, alpha: float) -> str:
        """The request of an alpha-conditioned model: the control line ``alpha=A`` in front of the message (inside
        the user turn, so any chat template carries it; `frugalthink.tasks.conditioning`)."""
        from frugalthink.tasks.conditioning import control_text

        return control_text(alpha) + self.user_message(problem)

    def ratio_message(self, problem: Problem, ratio: float) -> str:
        """The request of a budget-tier model (`frugalthink.rl.budgets`): the control line ``budget_ratio=R`` in
        front of the message; the top tier (ratio 1 or more) is the plain message."""
        if ratio >= 1.0:
            return self.user_message(problem)
        return f"budget_ratio={ratio:g}\n" + self.user_message(problem)

    # Budget forcing (the generation-cutoff baseline): the text appended when the budget runs out mid-thought,
    # after which the model writes only the answer, in at most ``answer_tokens`` tokens.
    force_answer_text: str = "\n</think>\n\nThe final answer is \\boxed{"
    answer_tokens: int = 24

    def grade(
        self, completions: Sequence[str], problems: Sequence[Problem], truncated: Sequence[bool] | None = None,
        thinking_open: Sequence[bool] | None = None,
    ) -> list[GradeResult]:
        """Grade with the one grader (`frugalthink.tasks.grading.grade_many`) under this task's rules."""
        return grade_many(completions, [p.answer for p in problems], truncated, kind=self.grading_kind,
                          thinking_open=thinking_open, number_fallback=self.number_fallback)
