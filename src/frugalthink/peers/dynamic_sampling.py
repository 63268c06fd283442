"""Dynamic sampling (DAPO, arXiv:2503.14476, sec. 3.2; DLER's setup): a prompt group whose k rewards are all equal
gives every sample the same advantage, i.e. no gradient. Such groups are dropped and the rollout is refilled with
groups of further prompts, generated in extra rounds, until it holds as many informative groups as a rollout has
prompts (or a round limit is reached, after which the dropped groups fill the rest, in their order).

Pure helpers first; then `DynamicSampling`, what `frugalthink.rl.trainer.FrugalRLOOTrainer` calls (recipe
``dynamic_sampling``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from frugalthink.util.errors import UserError


def informative_groups(rewards: Sequence[float], k: int, tol: float = 1e-9) -> list[int]:
    """Indices of the groups (consecutive runs of ``k`` rewards) whose rewards are not all equal.

    >>> informative_groups([1, 1, 0, 1, 1, 1], 2)
    [1]
    """
    if len(rewards) % k:
        raise ValueError(f"{len(rewards)} rewards do not form groups of {k}")
    out = []
    for g in range(len(rewards) // k):
        part = rewards[g * k : (g + 1) * k]
        if max(part) - min(part) > tol:
            out.append(g)
    return out


def choose_groups(rounds: Sequence[Sequence[int]], n_groups: int) -> list[tuple[int, int]]:
    """(round, group) pairs of a rollout of ``n_groups`` groups (every round generates that many): informative
    groups in the order they were generated; if there are fewer, the first round's uninformative groups fill the
    rest, in order.

    >>> choose_groups([[1], [0, 2]], 3)
    [(0, 1), (1, 0), (1, 2)]
    >>> choose_groups([[1], []], 3)
    [(0, 1), (0, 0), (0, 2)]
    """
    picked = [(r, g) for r, groups in enumerate(rounds) for g in groups][:n_groups]
    if len(picked) < n_groups:
        first = set(rounds[0])
        picked += [(0, g) for g in range(n_groups) if g not in first][: n_groups - len(picked)]
    return picked


def process_share(picked: Sequence[tuple[int, int]], rank: int, world: int) -> list[tuple[int, int]]:
    """The groups of the rollout that process ``rank`` of ``world`` trains on: its contiguous share, as TRL gives
    each process its slice of a rollout (so that every process gets as many groups).

    >>> process_share([(0, 1), (1, 0), (1, 2), (0, 3)], 1, 2)
    [(1, 2), (0, 3)]
    """
    if len(picked) % world:
        raise ValueError(f"{len(picked)} groups do not split over {world} processes")
    n = len(picked) // world
    return list(picked[rank * n : (rank + 1) * n])


LEFT_PADDED = ("prompt_ids", "prompt_mask")


def take_rows(batch: dict, rows: torch.Tensor) -> dict:
    return {key: value.index_select(0, rows) for key, value in batch.items()}


def merge_rows(parts: Sequence[dict], pad_id: int) -> dict:
    """Concatenate batches along the rows. 2D tensors of different widths are padded: the prompt's on the left
    (ids with ``pad_id``, mask with 0), every completion-aligned one on the right with 0 (ids with ``pad_id``)."""
    keys = parts[0].keys()
    out = {}
    for key in keys:
        values = [p[key] for p in parts]
        if values[0].dim() == 1:
            out[key] = torch.cat(values)
            continue
        width = max(v.size(1) for v in values)
        fill = pad_id if key.endswith("_ids") else 0
        padded = []
        for v in values:
            extra = v.new_full((v.size(0), width - v.size(1)), fill)
            padded.append(torch.cat([extra, v] if key in LEFT_PADDED else [v, extra], dim=1))
        out[key] = torch.cat(padded)
    return out


def check_recipe(recipe) -> None:
    """A recipe's ``dynamic_sampling``: every process decides on whole prompt groups."""
    if recipe.max_sampling_rounds < 0:
        raise UserError(f"max_sampling_rounds must be >= 0 (0: no limit, DLER's), got {recipe.max_sampling_rounds}")
    if recipe.sampling_limit not in ("fill", "error"):
        raise UserError(f"sampling_limit: unknown {recipe.sampling_limit!r} (fill or error)")
    if recipe.dynamic_sampling and recipe.prompts_per_rollout % recipe.num_processes:
        raise UserError(f"dynamic_sampling: each process must hold whole prompt groups: prompts_per_rollout "
                        f"({recipe.prompts_per_rollout}) must be a multiple of num_processes ({recipe.num_processes})")


class DynamicSampling:
    """The trainer's side (recipe ``dynamic_sampling``): a rollout assembled from up to ``max_rounds`` rounds of
    generation (0: until it is full), flat groups dropped and refilled from further prompts of a seeded walk over the
    dataset. At the limit ``at_limit`` says what happens: ``fill`` with the flat groups, or ``error``. ``block``:
    consecutive dataset rows refilled together (a problem's tiers, `frugalthink.rl.tiers`), so that a refilled
    problem is rolled out at every tier in the same round; groups are still kept or dropped one by one."""

    def __init__(self, max_rounds: int = 3, at_limit: str = "fill", block: int = 1) -> None:
        self.max_rounds, self.at_limit, self.block = max_rounds, at_limit, block  # max_rounds 0: no limit
        self._refill_order: list[int] = []
        self._refill_epoch = 0

    def rollout(self, trainer, inputs: list[dict]) -> dict:
        """Rounds of ``trainer._score_round`` until the rollout holds as many informative groups as it has prompts
        (or the round limit); every process decides alike on the gathered rewards and takes its share of groups."""
        k = trainer.num_generations
        world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
        n_local = len(inputs)
        n_groups = n_local * world // k  # of the whole rollout
        batches, informative, inputs_round = [], [], inputs
        while True:
            batch, rewards = trainer._score_round(inputs_round)
            batches.append(self._gather_rows(trainer, batch) if world > 1 else batch)
            informative.append(informative_groups(rewards, k))
            if sum(map(len, informative)) >= n_groups:
                break
            if self.max_rounds and len(batches) >= self.max_rounds:
                if self.at_limit == "error":  # DAPO's choice: say so instead of training on flat groups
                    raise RuntimeError(
                        f"dynamic sampling: {sum(map(len, informative))} of {n_groups} prompt groups informative "
                        f"after {len(batches)} rounds (max_sampling_rounds); the data are too easy or too hard for "
                        "this model (sampling_limit: fill trains on the flat groups instead)")
                break
            inputs_round = self._refill_inputs(trainer, n_groups)[rank * n_local : (rank + 1) * n_local]
        picked = choose_groups(informative, n_groups)
        mine = process_share(picked, rank, world)
        parts = [take_rows(batches[r], torch.arange(g * k, (g + 1) * k, device=batches[r]["completion_ids"].device))
                 for r, g in mine]
        metrics = trainer._metrics["train"]
        metrics["dynamic_sampling/rounds"].append(float(len(batches)))
        metrics["dynamic_sampling/informative_first_round"].append(len(informative[0]) / n_groups)
        metrics["dynamic_sampling/informative_final"].append(
            sum(1 for r, g in picked if g in informative[r]) / n_groups)
        return merge_rows(parts, trainer._tokenizer.pad_token_id)

    @staticmethod
    def _gather_rows(trainer, batch: dict) -> dict:
        """Every process's rows of ``batch``, in rank order (the rollout's global layout): 2D tensors padded to the
        widest process first, prompts on the left, completions on the right, as `merge_rows`."""
        out = {}
        for key, value in batch.items():
            if value.dim() > 1:
                fill = trainer._tokenizer.pad_token_id if key.endswith("_ids") else 0
                value = trainer.accelerator.pad_across_processes(value, dim=1, pad_index=fill,
                                                                 pad_first=key in LEFT_PADDED)
            out[key] = trainer.accelerator.gather(value)
        return out

    def _refill_inputs(self, trainer, n_groups: int) -> list[dict]:
        """The next ``n_groups`` training prompts of a seeded walk over the dataset (a new order each pass), each
        ``k`` times, as TRL's sampler lays a rollout out."""
        import random

        rows = []
        for _ in range(n_groups // self.block):
            if not self._refill_order:
                self._refill_epoch += 1
                order = list(range(len(trainer.train_dataset) // self.block))
                random.Random(f"refill-{trainer.args.seed}-{self._refill_epoch}").shuffle(order)
                self._refill_order = order
            first = self._refill_order.pop() * self.block
            for index in range(first, first + self.block):
                example = trainer.train_dataset[index]
                rows += [dict(example) for _ in range(trainer.num_generations)]
        return rows
