"""The paper's reward as a reward function of TRL's ``GRPOTrainer``::

    from trl import GRPOConfig, GRPOTrainer
    from frugalthink.integrations.trl import FrugalReward

    args = GRPOConfig(num_generations=8, scale_rewards="none", ...)   # "none": keep alpha's reward gaps (below)
    reward = FrugalReward("gsm8k", alpha=0.2, num_generations=args.num_generations, tokenizer=tokenizer)
    GRPOTrainer(model=model, args=args, reward_funcs=[reward], train_dataset=dataset, processing_class=tokenizer)

The dataset needs an ``answer`` column (the reference final answer, as the task's loader gives it) and may have a
``problem_id`` column (column names are arguments). GRPOTrainer's default ``scale_rewards="group"`` divides each
group's rewards by their std, which is the ablation the paper shows to undo alpha's control over length
(`frugalthink.rl.rewards.group_std_normalize`); ``"none"`` keeps the rewards as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from frugalthink.integrations.common import make_length_reward
from frugalthink.rl import reward_fn


class FrugalReward:
    """A GRPOTrainer reward function: the paper's length-penalised correctness reward, or any reward of
    `frugalthink.rl.rewards.REWARDS` with its options, over each prompt's group of ``num_generations`` samples.

    Called by each process on its own slice of the batch; a group may span processes, so (correct, length, ...) are
    gathered from every process, the rewards computed on the whole batch and this process's slice returned
    (`frugalthink.rl.reward_fn.LengthReward`, the reward of our own trainer, does all of this). Completions are graded with
    the task's grader; one without an EOS token at its end (cut by ``max_completion_length``) is wrong.

    Groups are TRL's layout: the gathered batch holds each prompt's samples consecutively (``RepeatSampler``), so
    sample i is in group i // num_generations. That is checked on every call: the samples of a group must share
    one prompt, and one id in ``id_column`` when the batch has that column; otherwise a one-line error names it.

    Args:
        task: a task name (``"gsm8k"``, ``"math500"``, ``"jsonl:PATH"``, ...) or a `frugalthink.tasks.Task`; its
            grader judges the completions.
        alpha: the penalty's strength in [0, 1) (the paper: 0.05-0.4). A dataset column ``alpha`` sets it per
            prompt (an alpha-conditioned run).
        reward: a name of `frugalthink.rl.rewards.REWARDS` (``"efficiency"``: the paper's).
        options: the reward's options (the papers' defaults otherwise). Laser-D/DE need ``bucket_targets``.
        num_generations: GRPOConfig's ``num_generations``; it must be the same number.
        tokenizer: decodes the completion ids for grading (special tokens kept, as our evaluation reads them) and
            gives the EOS; without it the trainer's decoded ``completions`` are graded.
        eos_token_ids: the ids that end a completion (default: the tokenizer's EOS). Pass every EOS the model's
            generation config declares when there are several (GRPOTrainer stops at each).
        max_completion_length: GRPOConfig's; needed by rewards whose options default to a share of it
            (``cosine``, ``dapo``, ``dler``, ``laser``).
        answer_column, id_column: dataset columns of the reference answer and of the prompt id.
        task_options: options of a task given by name (`frugalthink.tasks.get_task`).
    """

    def __init__(self, task="gsm8k", alpha: float = 0.2, reward: str = "efficiency", options: dict | None = None,
                 num_generations: int = 8, tokenizer=None, eos_token_ids: Iterable[int] | int | None = None,
                 max_completion_length: int | None = None, answer_column: str = "answer",
                 id_column: str | None = "problem_id", task_options: dict | None = None) -> None:
        if not isinstance(answer_column, str) or not answer_column:
            raise ValueError(f"answer_column must name a dataset column, got {answer_column!r}")
        self.reward = make_length_reward(task, alpha, reward, options, num_generations, tokenizer, eos_token_ids,
                                         max_completion_length, task_options)
        self.k, self.kind = num_generations, reward
        self.answer_column, self.id_column = answer_column, id_column
        self.__name__ = f"frugal_{reward}"  # TRL logs rewards/<name>/mean

    def __call__(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        answers = kwargs.get(self.answer_column)
        if answers is None:
            raise ValueError(f"FrugalReward: the batch has no {self.answer_column!r} column (the reference answers); "
                             f"add it to the dataset or name it with answer_column=")
        if self.kind == "l1_max" and kwargs.get("target") is None:
            raise ValueError("FrugalReward: reward l1_max needs a 'target' column (the token budget written in each "
                             "prompt)")
        ids = kwargs.get(self.id_column) if self.id_column else None
        self.check_groups(prompts, ids)
        rest = {k: v for k, v in kwargs.items() if k not in {self.answer_column, self.id_column, "answer",
                                                                "problem_id"}}
        problem_ids = list(ids) if ids is not None else [""] * len(completion_ids)
        return self.reward(prompts=prompts, completions=completions, completion_ids=completion_ids, answer=answers,
                           problem_id=problem_ids, **rest)

    def check_groups(self, prompts, ids=None) -> None:
        """Every group of ``num_generations`` consecutive samples of the gathered batch shares one prompt (and one
        id when ``ids`` is given); identical on every process, so all of them raise together."""
        keys = [hashlib.sha1(repr(p).encode()).hexdigest() for p in prompts]  # str hash() differs across processes
        all_keys, all_ids, _ = reward_fn._gather_lists(keys, [None] * len(keys) if ids is None else [str(i) for i in ids])
        if len(all_keys) % self.k:
            raise ValueError(f"FrugalReward: the gathered batch holds {len(all_keys)} completions, not whole groups "
                             f"of num_generations={self.k}: it must equal GRPOConfig's num_generations")
        for start in range(0, len(all_keys), self.k):
            end = start + self.k
            if ids is not None and len(set(all_ids[start:end])) > 1:
                raise ValueError(f"FrugalReward: samples {start}-{end - 1} of the gathered batch should be one prompt's "
                                 f"group but have {self.id_column} {sorted(set(all_ids[start:end]))}: "
                                 f"num_generations={self.k} must equal GRPOConfig's, and each prompt's samples must "
                                 f"be consecutive (TRL's RepeatSampler)")
            if len(set(all_keys[start:end])) > 1:
                raise ValueError(f"FrugalReward: samples {start}-{end - 1} of the gathered batch should be one prompt's "
                                 f"group but have different prompts: num_generations={self.k} must equal "
                                 f"GRPOConfig's, and each prompt's samples must be consecutive (TRL's RepeatSampler)")
