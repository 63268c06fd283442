"""One model, every tier: the length-penalty strength alpha as an input written into the prompt.

A conditioned run (a recipe with ``alphas: [...]``) gives each training prompt an alpha drawn from that set, fixed by
the prompt id and the seed, and writes it into the prompt where the task says (`Task.control_message`): by default
a control line in front of the user message::

    alpha=0.2
    <the task's message>

The line is part of the user turn, so it works with any chat template. The embedded tasks write the alpha as marks
of 0.05 before the colon instead, ``A3B5C8D1!!!!:`` for 0.2 (their tiny base loses its look-ups behind a prefix, and
reads a number's digit as one more problem digit; `ChainTask.control_message`). All k samples of a prompt share
it, and the reward of their group uses that alpha (with ``paired_tiers`` every problem is trained at every alpha, its
tiers in one rollout: `training_rows`). A recipe's ``tier_beta`` gives each tier its own KL
coefficient (`row_betas`): the correctness-only alpha = 0 tier has nothing else to hold it near the reference
while the penalised tiers pull the shared weights shorter (docs/results/conditioned.md). At inference ``frugalthink eval
--alpha A`` writes the same text; ``--effort NAME`` looks the alpha up in the recipe's ``efforts`` (saved with the
model; each must be a trained alpha; without them high / medium / low = the smallest / middle / largest trained
alpha), the way ``reasoning_effort`` works in hosted APIs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from frugalthink.util.errors import UserError

CONTROL = "alpha={alpha:g}\n"


def default_efforts(alphas: list[float]) -> dict[str, float]:
    """Named efforts of a model whose recipe names none: high = its smallest trained alpha (least penalty, most
    thinking), low = its largest, medium = the middle one."""
    tiers = sorted(alphas)
    return {"high": tiers[0], "medium": tiers[(len(tiers) - 1) // 2], "low": tiers[-1]}


def control_text(alpha: float) -> str:
    return CONTROL.format(alpha=alpha)


def prompt_alphas(problem_ids: list[str], alphas: list[float], seed: int) -> list[float]:
    """Each training prompt's alpha: uniform over ``alphas``, fixed by the prompt id and seed (resumable)."""
    return [random.Random(f"alpha-{seed}-{pid}").choice(list(alphas)) for pid in problem_ids]


def training_rows(problem_ids: list[str], alphas: list[float], seed: int, paired: bool) -> list[tuple[int, float]]:
    """The rows of a conditioned run's training set as (problem index, alpha). Unpaired: one row per problem with
    its `prompt_alphas` alpha. Paired (a recipe's ``paired_tiers``): one row per problem and trained alpha, the
    problem's tiers consecutive -- `frugalthink.rl.trainer` then keeps each such block in one rollout, so that the same
    problem is seen at every tier side by side.

    >>> training_rows(["a", "b"], [0.0, 0.4], 0, paired=True)
    [(0, 0.0), (0, 0.4), (1, 0.0), (1, 0.4)]
    """
    if paired:
        return [(i, a) for i in range(len(problem_ids)) for a in alphas]
    return list(enumerate(prompt_alphas(problem_ids, alphas, seed)))


def row_betas(alphas: list[float | None], tier_beta: dict[float, float], beta: float) -> list[float]:
    """The KL coefficient of each training row: its tier's entry in the recipe's ``tier_beta``, else ``beta``.

    >>> row_betas([0.0, 0.0, 0.4, None], {0.0: 0.03}, 0.001)
    [0.03, 0.03, 0.001, 0.001]
    """
    return [float(tier_beta.get(a, beta)) for a in alphas]


def beyond_trained(alpha: float, trained: list[float]) -> str | None:
    """A one-line notice when ``alpha`` lies outside the range the model was trained on, else None. Inside the
    range an unseen alpha interpolates (0.3 between 0.2 and 0.4 on tally); past the largest one the conditioned
    tally model does not get shorter, it gets less accurate (0.975 at 0.4, 0.855 at 0.6, 0.643 at 0.8, dev/LOG.md).

    >>> beyond_trained(0.3, [0.0, 0.2, 0.4]) is None
    True
    >>> beyond_trained(0.6, [0.0, 0.2, 0.4])
    'alpha 0.6 lies outside the trained alphas 0-0.4: the model was never trained there (expect lost accuracy, not fewer tokens)'
    """
    lo, hi = min(trained), max(trained)
    if lo <= alpha <= hi:
        return None
    return (f"alpha {alpha:g} lies outside the trained alphas {lo:g}-{hi:g}: the model was never trained there "
            "(expect lost accuracy, not fewer tokens)")


def run_config(model: str | Path) -> dict | None:
    """The training recipe saved with a model trained here (``frugalthink_run.json``), or None."""
    path = Path(model) / "frugalthink_run.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        raise UserError(f"{path}: unreadable run metadata") from None


def trained_alphas(model: str | Path) -> list[float]:
    """The alphas an alpha-conditioned model was trained on; empty for any other model."""
    cfg = run_config(model)
    return list((cfg or {}).get("alphas") or [])


def effort_alpha(model: str | Path, effort: str) -> float:
    """The alpha a named effort stands for in the recipe the model was trained with."""
    cfg = run_config(model)
    if not cfg or not cfg.get("alphas"):
        raise UserError(f"--effort {effort}: {model} is not an alpha-conditioned model (its recipe has no 'alphas')")
    efforts = cfg.get("efforts") or default_efforts(cfg["alphas"])
    if effort not in efforts:
        raise UserError(f"--effort {effort!r}: the model knows {', '.join(sorted(efforts))}")
    return float(efforts[effort])


# -------------------------------------------------------------------------------------------------------------
# Budget-tier models (recipe ``budget_tiers``, `frugalthink.rl.budgets`): the tier a request names, at inference.
# -------------------------------------------------------------------------------------------------------------
def default_budget_efforts(tiers: list[float]) -> dict[str, float]:
    """Named efforts of a budget-tier model whose recipe names none: high = its largest tier (the most thinking),
    low = its smallest, medium = the middle one.

    >>> default_budget_efforts([1.0, 0.6, 0.4])
    {'high': 1.0, 'medium': 0.6, 'low': 0.4}
    """
    tiers = sorted(tiers, reverse=True)
    return {"high": tiers[0], "medium": tiers[(len(tiers) - 1) // 2], "low": tiers[-1]}


def budget_tiers(model: str | Path) -> tuple[list[float], str, dict[str, float]] | None:
    """A budget-tier model's trained tiers, their unit (ratio or tokens) and its named efforts (a budget-tier RL run,
    or its warm start: `frugalthink shortest --method tiers`); None for others."""
    cfg = run_config(model)
    found = (cfg or {}).get("budget_tiers") or ((cfg or {}).get("method") == "tiers" and (cfg or {}).get("tiers"))
    if not found:
        return None
    tiers = [float(t) for t in found]
    efforts = {k: float(v) for k, v in (cfg.get("budget_efforts") or default_budget_efforts(tiers)).items()}
    return tiers, cfg.get("budget_unit", "ratio"), efforts


def effort_tier(model: str | Path, effort: str) -> tuple[str, float]:
    """The (unit, tier) a named effort stands for in a budget-tier model's recipe."""
    found = budget_tiers(model)
    if found is None:
        raise UserError(f"--effort {effort}: {model} is not a budget-tier model (its recipe has no 'budget_tiers')")
    _, unit, efforts = found
    if effort not in efforts:
        raise UserError(f"--effort {effort!r}: the model knows {', '.join(sorted(efforts))}")
    return unit, efforts[effort]


def beyond_trained_ratio(ratio: float, trained: list[float]) -> str | None:
    """A one-line notice when a budget ratio lies outside the trained ones, else None (an unseen ratio between two
    trained ones is expected to land between them).

    >>> beyond_trained_ratio(0.5, [1.0, 0.6, 0.4]) is None
    True
    """
    lo, hi = min(trained), max(max(trained), 1.0)
    if lo <= ratio:
        return None
    return f"budget ratio {ratio:g} lies below the trained ratios {lo:g}-{hi:g}: the model was never trained there"
