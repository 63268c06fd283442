"""Dynamic sampling (DAPO, arXiv:2503.14476, sec. 3.2; DLER's setup): a prompt group whose k rewards are all equal
gives every sample the same advantage, i.e. no gradient. Such groups are dropped and the rollout is refilled with
groups of further prompts, generated in extra rounds, until it holds as many informative groups as a rollout has
prompts (or a round limit is reached, after which the dropped groups fill the rest, in their order).

Pure helpers here; the trainer glue is `frugalthink.rl.trainer.FrugalRLOOTrainer` (recipe ``dynamic_sampling``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
