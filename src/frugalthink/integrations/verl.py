"""verl 0.9.x: the paper's reward over each prompt's group, the group being verl's ``uid``.

verl imports only when something here is used (``FrugalRewardManager``, `register`), so the package never needs it;
verl 0.9.1 pins transformers < 5.11 and lives in a venv of its own (``make test-verl``).

How verl 0.9.1 scores rule-based rewards decides the shape of this module: its reward managers (the registry of
``verl.experimental.reward_loop.reward_manager``) are called one sample at a time (``run_single``) while the rollout
streams, so no reward manager sees a whole group there. The group statistic is therefore computed where verl does
see the whole batch with its uids, the advantage estimator:

* ``FrugalRewardManager`` (registered as ``frugal``): ``run_single`` grades one sample with the task's grader and
  scores it 1 (correct) or 0 (wrong or truncated). Its ``__call__(data)`` scores a whole `DataProto` with the
  group reward (uid groups), for trainers that hand the manager the batch.
* the advantage estimator ``frugal`` (registered with ``core_algos.register_adv_est``): reads each sample's 0/1
  score, its length (the response mask) and its uid, computes the reward of `frugalthink.rl.rewards.REWARDS` over
  each uid group, and passes it to verl's RLOO estimator (``base: grpo`` for GRPO's), as the paper trains.

configs/verl/frugal_reward.yaml shows the settings (``reward.reward_kwargs`` for the manager, ``algorithm.frugal``
for the estimator).
"""

from __future__ import annotations

import sys

from frugalthink.integrations.common import make_length_reward, reward_options
from frugalthink.rl import rewards as R
from frugalthink.rl.reward_fn import LengthReward

# Rewards the estimator can compute from (correct, length, uid) alone: Laser's need the "formed" grade, L1's a
# per-prompt budget, neither of which reaches verl's advantage step.
ESTIMATOR_REWARDS = tuple(name for name in R.REWARDS if name not in ("laser", "laser_d", "laser_de", "l1_max"))
MANAGER_KEYS = {"task", "task_options", "alpha", "reward", "options", "eos_token_ids", "max_completion_length"}
ESTIMATOR_KEYS = {"alpha", "reward", "options", "max_completion_length", "base"}


def _cfg_get(cfg, key, default=None):
    """A key of a DictConfig, a dict or a dataclass (verl hands either)."""
    if cfg is None:
        return default
    if hasattr(cfg, "get"):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _plain(value):
    """OmegaConf containers as plain Python (the registry's options are dicts and lists)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:
        return value
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _settings(cfg, allowed: set[str], where: str) -> dict:
    settings = dict(_plain(cfg) or {})
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    return settings


def _rows(data, tokenizer):
    """Per sample of a DataProto: prompt text, response ids (the valid ones, EOS included), reference answer, uid."""
    prompts, responses, mask = data.batch["prompts"], data.batch["responses"], data.batch["attention_mask"]
    p_len = prompts.shape[-1]
    n_resp = mask[:, p_len:].sum(dim=-1).tolist()
    texts = [tokenizer.decode(prompts[i][mask[i, :p_len].bool()].tolist(), skip_special_tokens=False)
             for i in range(len(n_resp))]
    ids = [responses[i, :n].tolist() for i, n in enumerate(n_resp)]
    if "reward_model" not in data.non_tensor_batch:
        raise ValueError("frugal: the batch has no reward_model column (verl's {'ground_truth': answer} per sample)")
    answers = [str(rm["ground_truth"]) for rm in data.non_tensor_batch["reward_model"]]
    return texts, ids, answers


def group_rewards(data, reward: LengthReward, tokenizer) -> list[float]:
    """The reward of every sample of a verl `DataProto`, each uid a group (its members anywhere in the batch).

    The samples are laid out group by group and handed to `frugalthink.rl.reward_fn.LengthReward` (grading, truncation and the
    registry's reward as in our trainer), then put back in the batch's order. Every uid group must be the same size.
    """
    if "uid" not in data.non_tensor_batch:
        raise ValueError("frugal: the batch has no uid column; verl sets one per prompt before repeating it n times")
    uids = [str(u) for u in data.non_tensor_batch["uid"]]
    members: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        members.setdefault(u, []).append(i)
    sizes = sorted({len(m) for m in members.values()})
    if len(sizes) != 1:
        raise ValueError(f"frugal: the uid groups differ in size ({', '.join(map(str, sizes))} samples); each prompt "
                         f"needs its rollout.n samples together")
    order = [i for m in members.values() for i in m]
    texts, ids, answers = _rows(data, tokenizer)
    reward.k = sizes[0]
    part = reward(prompts=[texts[i] for i in order], completions=[""] * len(order),
                  completion_ids=[ids[i] for i in order], answer=[answers[i] for i in order],
                  problem_id=[uids[i] for i in order])
    out = [0.0] * len(order)
    for i, r in zip(order, part, strict=True):
        out[i] = r
    return out


def token_level(data, scores):
    """``scores`` at each sample's last valid response token, zeros elsewhere (verl's reward tensor layout)."""
    import torch

    p_len = data.batch["prompts"].shape[-1]
    last = data.batch["attention_mask"][:, p_len:].sum(dim=-1) - 1
    out = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
    out[torch.arange(out.shape[0]), last] = torch.tensor(scores, dtype=torch.float32)
    return out


def frugal_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """verl advantage estimator ``frugal``: the reward of ``algorithm.frugal`` over each uid group, from the
    samples' 0/1 correctness scores (``FrugalRewardManager.run_single``) and lengths, then verl's RLOO (or
    ``base``) estimator on it."""
    import torch
    from verl.trainer.ppo import core_algos

    if index is None:
        raise ValueError("frugal estimator: the batch has no uid column to group the samples by")
    if _cfg_get(config, "use_kl_in_reward", False):
        raise ValueError("frugal estimator: algorithm.use_kl_in_reward must be false: the estimator reads each "
                         "sample's correctness from its reward")
    settings = _settings(_cfg_get(config, "frugal"), ESTIMATOR_KEYS, "algorithm.frugal")
    base = settings.pop("base", "rloo")
    if base not in ("rloo", "grpo"):
        raise ValueError(f"algorithm.frugal.base: {base!r} is not rloo (the paper's) or grpo")
    reward = _estimator_reward(settings)
    scores = token_level_rewards.sum(dim=-1).tolist()
    if any(s not in (0.0, 1.0) for s in scores):
        raise ValueError("frugal estimator: every sample's reward must be 0 or 1 (correctness, as reward manager "
                         f"frugal gives); got {sorted(set(scores))[:5]}")
    lengths = response_mask.sum(dim=-1).long().tolist()
    groups = [str(u) for u in index]
    rewards = reward.rewards([s == 1.0 for s in scores], lengths, groups, [0] * len(scores))
    last = response_mask.sum(dim=-1).long() - 1
    shaped = torch.zeros_like(token_level_rewards)
    shaped[torch.arange(shaped.shape[0]), last] = torch.tensor(rewards, dtype=shaped.dtype)
    return core_algos.get_adv_estimator_fn(base)(token_level_rewards=shaped, response_mask=response_mask,
                                                 index=index, config=config, **kwargs)


def _estimator_reward(settings: dict) -> LengthReward:
    name = settings.get("reward", "efficiency")
    if name not in ESTIMATOR_REWARDS:
        raise ValueError(f"algorithm.frugal.reward: {name!r} is not one the estimator computes (one of "
                         f"{', '.join(ESTIMATOR_REWARDS)}): it needs more than correctness and length")
    alpha = settings.get("alpha", 0.2)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha < 1.0:
        raise ValueError(f"algorithm.frugal.alpha must be a number in [0, 1), got {alpha!r}")
    options = reward_options(name, settings.get("options"), settings.get("max_completion_length"))
    return LengthReward(None, float(alpha), {0}, reward=name, options=options)  # only its rewards() is used


_BUILT: dict = {}


def register():
    """Define ``FrugalRewardManager`` and register it (``frugal``) and the advantage estimator (``frugal``) with
    verl; returns the manager class. Idempotent; runs on the first use of this module's verl names."""
    if "manager" in _BUILT:
        return _BUILT["manager"]
    from verl.experimental.reward_loop.reward_manager import register as register_manager
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.trainer.ppo.core_algos import register_adv_est

    class FrugalRewardManager(RewardManagerBase):
        """verl reward manager ``frugal``: grades with frugalthink's grader. ``run_single`` (verl's per-sample call)
        scores correctness 1/0; ``__call__`` scores a whole batch with the group reward, each uid a group.

        Settings (``reward.reward_kwargs``): ``task`` (a frugalthink task name; default gsm8k), ``task_options``,
        ``alpha``, ``reward``, ``options``, ``eos_token_ids`` (default: the tokenizer's EOS),
        ``max_completion_length`` (default: ``actor_rollout_ref.rollout.response_length``).
        """

        def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None,
                     reward_model_tokenizer=None, **kwargs) -> None:
            super().__init__(config, tokenizer, compute_score)
            s = _settings(_cfg_get(_cfg_get(config, "reward"), "reward_kwargs"), MANAGER_KEYS, "reward.reward_kwargs")
            cap = s.get("max_completion_length") or _cfg_get(_cfg_get(_cfg_get(config, "actor_rollout_ref"), "rollout"),
                                                             "response_length")
            eos = s.get("eos_token_ids")
            self.reward = make_length_reward(s.get("task", "gsm8k"), s.get("alpha", 0.2), s.get("reward", "efficiency"),
                                             s.get("options"), tokenizer=tokenizer, eos_token_ids=eos,
                                             max_completion_length=cap, task_options=s.get("task_options"))
            self.correctness = make_length_reward(self.reward.task, 0.0, "correctness", tokenizer=tokenizer,
                                                  eos_token_ids=eos)

        async def run_single(self, data) -> dict:
            """One sample (verl's streaming call): 1.0 when correct, 0.0 when wrong or truncated."""
            data = data[-1:]  # a multi-turn trajectory: its last sequence, as verl's managers do
            return self.score_one(data)

        def score_one(self, data) -> dict:
            texts, ids, answers = _rows(data, self.tokenizer)
            self.correctness.k = 1
            score = self.correctness(prompts=texts, completions=[""], completion_ids=ids, answer=answers,
                                     problem_id=["0"])[0]
            return {"reward_score": score, "reward_extra_info": {"frugal_correct": score, "frugal_length": len(ids[0])}}

        def __call__(self, data, return_dict: bool = False):
            """A whole batch: the group reward of every sample (uid groups), at its last response token."""
            scores = group_rewards(data, self.reward, self.tokenizer)
            tensor = token_level(data, scores)
            return {"reward_tensor": tensor, "reward_extra_info": {"frugal_reward": scores}} if return_dict else tensor

    FrugalRewardManager.__module__, FrugalRewardManager.__qualname__ = __name__, "FrugalRewardManager"  # pickles
    register_manager("frugal")(FrugalRewardManager)
    register_adv_est("frugal")(frugal_advantage)
    _BUILT["manager"] = FrugalRewardManager
    return FrugalRewardManager


def __getattr__(name: str):
    if name == "FrugalRewardManager":  # verl's importlib source: getattr(module, "FrugalRewardManager")
        return register()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if "verl" in sys.modules:  # imported by verl itself (VERL_USE_EXTERNAL_MODULES): register now
    try:
        register()
    except ImportError:  # verl half-initialised; the first use registers
        pass
