"""`frugalthink.integrations.verl` against verl 0.9.1's own DataProto, registries and RLOO estimator, on CPU.

Needs verl, which pins transformers < 5.11: `make test-verl` builds .venv-verl and runs this file; elsewhere it is
skipped."""

import asyncio
import pickle
from pathlib import Path

import pytest

pytest.importorskip("verl", reason="verl is not installed here: `make test-verl` builds .venv-verl (verl 0.9.1) "
                                   "and runs this file there")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402

import frugalthink.integrations.verl as fv  # noqa: E402
from frugalthink.organisms.tiny import build_tokenizer  # noqa: E402
from frugalthink.rl.reward_fn import UNFORMED  # noqa: E402
from frugalthink.rl.rewards import REWARDS, RewardBatch  # noqa: E402
from frugalthink.tasks import get_task  # noqa: E402
from frugalthink.tasks.base import Problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ALPHA = 0.3
R_LEN = 24  # response_length (the generation cap)


def _batch():
    """3 prompts x 4 samples of the chain task, the samples of each uid scattered over the batch (as verl's
    balance_batch may leave them); sample 7 truncated (no EOS), sample 10 without a final answer."""
    tok = build_tokenizer()
    eos = tok.eos_token_id
    uids = ["u-a"] * 4 + ["u-b"] * 4 + ["u-c"] * 4
    answers = ["3"] * 4 + ["6"] * 4 + ["3"] * 4
    texts, ids = [], []
    for i, a in enumerate(answers):
        right = i % 5 != 0
        texts.append("<think>1+1=2</think>" if i == 10 else f"<think>{'1+1=2,' * (i % 4)}</think>\\boxed{{{a if right else 0}}}")
        ids.append(tok(texts[-1], add_special_tokens=False)["input_ids"] + ([eos] if i != 7 else []))
    order = [5, 0, 11, 2, 8, 1, 6, 3, 10, 4, 9, 7]
    uids, answers, texts, ids = ([x[i] for i in order] for x in (uids, answers, texts, ids))
    prompts = [tok(f"Q{u[-1]}:", add_special_tokens=False)["input_ids"] for u in uids]
    p_len = max(map(len, prompts))
    assert max(map(len, ids)) <= R_LEN
    pad = tok.pad_token_id
    prompt_t = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompts])
    resp_t = torch.tensor([r + [pad] * (R_LEN - len(r)) for r in ids])
    mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (R_LEN - len(r))
                         for p, r in zip(prompts, ids)])
    data = DataProto.from_dict(
        tensors={"prompts": prompt_t, "responses": resp_t, "input_ids": torch.cat([prompt_t, resp_t], dim=1),
                 "attention_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object), "data_source": np.array(["chain"] * 12, dtype=object),
                     "reward_model": np.array([{"ground_truth": a, "style": "rule"} for a in answers], dtype=object)})
    return tok, data, uids, answers, texts, ids


def _grades(uids, answers, texts, ids, eos):
    grades = get_task("chain").grade(texts, [Problem(id=u, question="", answer=a) for u, a in zip(uids, answers)],
                                     [x[-1] != eos for x in ids], thinking_open=[False] * len(texts))
    return [g.correct for g in grades], [g.reason not in UNFORMED for g in grades]


def _config(**reward_kwargs):
    return OmegaConf.create({"reward": {"reward_kwargs": {"task": "chain", **reward_kwargs}},
                             "actor_rollout_ref": {"rollout": {"response_length": R_LEN, "n": 4}}})


@pytest.mark.parametrize("name,options,resolved", [
    ("efficiency", None, {}),
    ("kimi", {"weight": 0.5}, {"weight": 0.5}),
    ("dler", None, {"limit": R_LEN}),
    ("laser", None, {"target": R_LEN // 4, "bonus": 0.5}),
])
def test_the_manager_scores_a_batch_with_uid_groups(name, options, resolved):
    tok, data, uids, answers, texts, ids = _batch()
    manager = fv.FrugalRewardManager(config=_config(alpha=ALPHA, reward=name, options=options), tokenizer=tok)
    out = manager(data, return_dict=True)
    correct, formed = _grades(uids, answers, texts, ids, tok.eos_token_id)
    want = REWARDS[name].compute(RewardBatch(correct, [len(x) for x in ids], uids, [0] * 12, formed, [False] * 12, ALPHA),
                                 resolved)
    tensor = out["reward_tensor"]
    assert tensor.shape == data.batch["responses"].shape
    assert tensor.sum(dim=-1).tolist() == pytest.approx(want, abs=1e-6)
    assert all(tensor[i, len(ids[i]) - 1] == tensor[i].sum() for i in range(12))  # at the last response token
    assert not correct[11] and any(correct) and not all(correct)  # sample 7 of the layout: truncated -> wrong
    if name == "efficiency":
        assert len({round(x, 5) for x in want}) > 4


def test_run_single_is_correctness_and_the_estimator_gives_rloo_on_the_group_reward():
    tok, data, uids, answers, texts, ids = _batch()
    manager = fv.FrugalRewardManager(config=_config(), tokenizer=tok)
    outs = [asyncio.run(manager.run_single(data[i : i + 1])) for i in range(12)]
    correct, _ = _grades(uids, answers, texts, ids, tok.eos_token_id)
    assert [o["reward_score"] for o in outs] == [1.0 if c else 0.0 for c in correct]
    assert [o["reward_extra_info"]["frugal_length"] for o in outs] == [len(x) for x in ids]

    from verl.trainer.ppo import core_algos

    scores = fv.token_level(data, [o["reward_score"] for o in outs])
    response_mask = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1]:]
    index = data.non_tensor_batch["uid"]
    config = OmegaConf.create({"use_kl_in_reward": False, "frugal": {"alpha": ALPHA}})
    adv, _ = core_algos.get_adv_estimator_fn("frugal")(token_level_rewards=scores, response_mask=response_mask,
                                                        index=index, config=config)
    want = REWARDS["efficiency"].compute(RewardBatch(correct, [len(x) for x in ids], uids, alpha=ALPHA), {})
    rloo, _ = core_algos.compute_rloo_outcome_advantage(fv.token_level(data, want), response_mask, index,
                                                        config=config)
    assert torch.allclose(adv, rloo)
    assert adv.abs().sum() > 0
    # the batch reward of the manager is the estimator's reward
    batch = fv.FrugalRewardManager(config=_config(alpha=ALPHA), tokenizer=tok)(data).sum(dim=-1).tolist()
    assert batch == pytest.approx(want, abs=1e-6)

    def estimate(**frugal):
        cfg = OmegaConf.create({"use_kl_in_reward": frugal.pop("kl", False), "frugal": frugal})
        return core_algos.get_adv_estimator_fn("frugal")(token_level_rewards=scores, response_mask=response_mask,
                                                          index=index, config=cfg)

    with pytest.raises(ValueError, match="use_kl_in_reward must be false"):
        estimate(kl=True)
    with pytest.raises(ValueError, match="'laser' is not one the estimator computes"):
        estimate(reward="laser")
    with pytest.raises(ValueError, match="unknown key.*alhpa"):
        estimate(alhpa=0.2)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        core_algos.get_adv_estimator_fn("frugal")(token_level_rewards=scores * 0.5, response_mask=response_mask,
                                                  index=index, config=OmegaConf.create({"frugal": {}}))


def test_registered_where_verl_0_9_looks_and_the_example_config_resolves():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    cls = fv.FrugalRewardManager
    assert get_reward_manager_cls("frugal") is cls and get_adv_estimator_fn("frugal") is fv.frugal_advantage
    assert pickle.loads(pickle.dumps(cls)) is cls  # Ray ships it by reference
    example = OmegaConf.load(ROOT / "configs" / "verl" / "frugal_reward.yaml")
    assert resolve_reward_manager_cls(example) is cls
    tok, data, *_ = _batch()
    config = OmegaConf.merge(example, {"actor_rollout_ref": {"rollout": {"response_length": R_LEN}},
                                       "reward": {"reward_kwargs": {"task": "chain"}}})
    assert cls(config=config, tokenizer=tok)(data).shape == data.batch["responses"].shape
    assert example.algorithm.adv_estimator == "frugal" and not example.algorithm.use_kl_in_reward


def test_bad_batches_and_settings_are_refused_in_one_line():
    tok, data, *_ = _batch()
    manager = fv.FrugalRewardManager(config=_config(), tokenizer=tok)
    with pytest.raises(ValueError, match=r"uid groups differ in size \(3, 4, 5 samples\)"):
        bad = data[:]
        bad.non_tensor_batch["uid"] = np.array(["u-a"] * 3 + ["u-b"] * 4 + ["u-c"] * 5, dtype=object)
        manager(bad)
    with pytest.raises(ValueError, match="reward.reward_kwargs: unknown key"):
        fv.FrugalRewardManager(config=_config(alhpa=0.1), tokenizer=tok)
    with pytest.raises(ValueError, match="alpha must be a number"):
        fv.FrugalRewardManager(config=_config(alpha=2), tokenizer=tok)
