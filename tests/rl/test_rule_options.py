"""The official rule's options for the peers' published setups, each pinned against plain-Python loops written from
the formulas (no shared code with `frugalthink.rl.update_rule`): GRPO advantages, batch-normalised advantages, the
k3 KL loss, the entropy bonus, token-mean aggregation and the sequence-level ratio; and the recipe checks."""

import math

import pytest
import torch

from frugalthink.rl import update_rule as U
from frugalthink.util.errors import UserError

K = 4
LENGTHS = [5, 2, 7, 3, 1, 6, 4, 4]
REWARDS = [0.9, 0.0, 0.75, 0.8, 0.0, 1.0, 1.0, 0.0]
EPS = 0.2


def _mask(lengths):
    width = max(lengths)
    return torch.tensor([[1.0 if t < n else 0.0 for t in range(width)] for n in lengths], dtype=torch.float64)


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = _mask(LENGTHS)
    old = (-torch.rand(mask.shape, generator=g, dtype=torch.float64) * 3) * mask
    logps = (old + 0.3 * torch.randn(mask.shape, generator=g, dtype=torch.float64)) * mask
    ref = (old + 0.2 * torch.randn(mask.shape, generator=g, dtype=torch.float64)) * mask
    adv = torch.randn(mask.shape, generator=g, dtype=torch.float64) * mask
    return mask, old, logps, ref, adv


def test_grpo_advantages_are_group_mean_and_sample_std():
    got = U.grpo_advantages(torch.tensor(REWARDS, dtype=torch.float64), K)
    for g in range(len(REWARDS) // K):
        xs = REWARDS[g * K : (g + 1) * K]
        mean = sum(xs) / K
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (K - 1))
        for i, x in enumerate(xs):
            assert got[g * K + i].item() == pytest.approx((x - mean) / (std + 1e-6), abs=1e-9)
    assert U.grpo_advantages(torch.tensor([1.0, 1.0]), 2).tolist() == [0.0, 0.0]  # a flat group


def test_k3_kl_per_token():
    _, _, logps, ref, _ = _tensors()
    got = U.k3_kl(logps, ref)
    for i in range(logps.size(0)):
        for t in range(logps.size(1)):
            d = ref[i, t].item() - logps[i, t].item()
            assert got[i, t].item() == pytest.approx(min(10.0, math.exp(d) - d - 1), abs=1e-12)


def _surrogate_loops(logps, old, adv, lengths, eps, sequence_ratio):
    """-min(q A, clip(q) A) per valid token, as lists; q per token, or exp(sum over the sequence) for all its tokens."""
    rows = []
    for i, n in enumerate(lengths):
        seq_q = math.exp(sum(logps[i][t] - old[i][t] for t in range(n)))
        row = []
        for t in range(n):
            q = seq_q if sequence_ratio else math.exp(logps[i][t] - old[i][t])
            a = adv[i][t]
            row.append(-min(q * a, min(max(q, 1 - eps), 1 + eps) * a))
        rows.append(row)
    return rows


def _token_mean(rows):
    flat = [x for r in rows for x in r]
    return sum(flat) / len(flat)


def _seq_mean(rows):
    return sum(sum(r) / len(r) for r in rows) / len(rows)


@pytest.mark.parametrize("ratio_level", ["token", "sequence"])
@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean"])
def test_ppo_loss_ratio_level_and_aggregation_match_the_loops(ratio_level, agg):
    mask, old, logps, _, adv = _tensors()
    got, _ = U.ppo_loss(logps, old, adv, mask, EPS, None, ratio_level, agg)
    rows = _surrogate_loops(logps.tolist(), old.tolist(), adv.tolist(), LENGTHS, EPS, ratio_level == "sequence")
    want = _token_mean(rows) if agg == "token-mean" else _seq_mean(rows)
    assert got.item() == pytest.approx(want, abs=1e-12)


def test_the_default_pair_is_the_official_loss_exactly():
    mask, old, logps, _, adv = _tensors(1)
    a, _ = U.ppo_loss(logps, old, adv, mask, EPS)
    b, _ = U.ppo_token_loss(logps, old, adv, mask, EPS)
    assert a.item() == b.item()


def test_token_mean_weighs_long_completions_by_their_tokens():
    values, mask = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert U.aggregate(values, mask).item() == pytest.approx((1 + 4) / 2)
    assert U.aggregate(values, mask, "token-mean").item() == pytest.approx(7 / 4)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        U.aggregate(values, mask, "seq-sum")


# ---------------------------------------------------------------------------------------------- in the trainer
def _trainer(tmp_path, **rule_options):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer
    from frugalthink.rl.recipe import RLRecipe, build_rloo_config
    from frugalthink.rl.trainer import FrugalRLOOTrainer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), seed=3).save_pretrained(
        tmp_path / "model")
    recipe = RLRecipe(model="unused", num_generations=K, prompts_per_rollout=2, updates_per_rollout=1, rollouts=1,
                      max_completion_length=8, learning_rate=1e-3, beta=0.0,
                      kl_loss_coef=rule_options.get("kl_loss_coef", 0.0))
    trainer = FrugalRLOOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tmp_path / "model"), rule_options=rule_options, reward_beta=0.0,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=build_rloo_config(recipe, tmp_path / "run"), processing_class=tok,
        train_dataset=Dataset.from_list([{"prompt": "A1B2:"}] * 2))
    return trainer, tok


def _model_batch(trainer, tok, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = _mask(LENGTHS).long()
    prompt_lens = [3, 5, 4, 2] * 2
    P = max(prompt_lens)
    prompt_ids = torch.tensor([[tok.pad_token_id] * (P - n) + torch.randint(5, 40, (n,), generator=g).tolist()
                               for n in prompt_lens])
    prompt_mask = torch.tensor([[0] * (P - n) + [1] * n for n in prompt_lens])
    completion_ids = torch.randint(5, 40, mask.shape, generator=g) * mask + tok.pad_token_id * (1 - mask)
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": mask}, g


def test_kl_loss_and_entropy_bonus_in_the_trainers_loss(tmp_path):
    """loss = surrogate - entropy_coeff * agg(entropy) + kl_loss_coef * agg(k3 KL), each aggregated as the loss is
    (verl's actor); the reference model exists although beta (the KL in the reward) is 0."""
    trainer, tok = _trainer(tmp_path, advantage="grpo", kl_loss_coef=0.05, entropy_coeff=0.01,
                            loss_agg_mode="token-mean")
    assert trainer.ref_model is not None and trainer.beta == 0.0
    model = trainer.model.train()
    batch, g = _model_batch(trainer, tok)
    mask = batch["completion_mask"]
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], mask], 1)
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(model, ids, attn, mask.size(1),
                                                                         compute_entropy=True)
    old = (logps + 0.1 * torch.randn(logps.shape, generator=g)) * mask
    ref = (logps + 0.2 * torch.randn(logps.shape, generator=g)) * mask
    batch = {**batch, "advantages": torch.randn(logps.shape, generator=g) * mask, "old_per_token_logps": old,
             "ref_per_token_logps": ref}
    loss = trainer._compute_loss(model, batch)
    L, Old, R, A, E = (x.tolist() for x in (logps, old, ref, batch["advantages"], entropies))
    rows = _surrogate_loops(L, Old, A, LENGTHS, EPS, False)
    kl = [[math.exp(R[i][t] - L[i][t]) - (R[i][t] - L[i][t]) - 1 for t in range(n)] for i, n in enumerate(LENGTHS)]
    ent = [[E[i][t] for t in range(n)] for i, n in enumerate(LENGTHS)]
    want = _token_mean(rows) - 0.01 * _token_mean(ent) + 0.05 * _token_mean(kl)
    assert loss.item() == pytest.approx(want, abs=1e-5)
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(_token_mean(kl), abs=1e-5)
    loss.backward()  # the entropy bonus and the KL term carry gradients
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_grpo_and_batch_normalised_advantages_reach_every_token_unwhitened(tmp_path):
    mask = _mask(LENGTHS)
    old = torch.zeros(mask.shape, dtype=torch.float64)
    rewards = torch.tensor(REWARDS, dtype=torch.float64).unsqueeze(1)
    trainer, _ = _trainer(tmp_path, advantage="grpo")
    batch = trainer.rule.advantages(trainer, {"completion_mask": mask}, old, None, rewards, 0.0)
    want = U.grpo_advantages(torch.tensor(REWARDS, dtype=torch.float64), K)
    for i, n in enumerate(LENGTHS):
        assert batch["advantages"][i, :n].tolist() == pytest.approx([want[i].item()] * n)
        assert not batch["advantages"][i, n:].any()
    trainer, _ = _trainer(tmp_path / "b")
    trainer.normalize_advantages = True  # DLER's batch normalisation (recipe batch_normalize)
    batch = trainer.rule.advantages(trainer, {"completion_mask": mask}, old, None, rewards, 0.0)
    loo = [REWARDS[i] - sum(REWARDS[j] for j in range(i // K * K, i // K * K + K) if j != i) / (K - 1)
           for i in range(len(REWARDS))]
    mean = sum(loo) / len(loo)
    std = math.sqrt(sum((x - mean) ** 2 for x in loo) / (len(loo) - 1))
    for i, n in enumerate(LENGTHS):
        assert batch["advantages"][i, :n].tolist() == pytest.approx([(loo[i] - mean) / (std + 1e-4)] * n)
    assert "sequence_advantages" not in batch


@pytest.mark.parametrize("fields, message", [
    ({"advantage": "ppo"}, "advantage: unknown 'ppo'"),
    ({"loss_agg_mode": "seq-sum"}, "loss_agg_mode: unknown"),
    ({"ratio_level": "tok"}, "ratio_level: unknown"),
    ({"kl_loss_coef": -1.0}, "kl_loss_coef must be >= 0"),
    ({"update_rule": "trl", "entropy_coeff": 0.001}, "entropy_coeff: options of update_rule official, not 'trl'"),
    ({"advantage": "grpo"}, "advantage grpo: the KL goes in as a loss"),
    ({"batch_normalize": True}, "batch_normalize: the KL goes in as a loss"),
    ({"advantage": "grpo", "batch_normalize": True, "beta": 0.0}, "use one"),
    ({"max_sampling_rounds": -1}, "max_sampling_rounds must be >= 0"),
    ({"sampling_limit": "retry"}, "sampling_limit: unknown 'retry'"),
])
def test_rule_option_errors_name_the_field(fields, message):
    from frugalthink.rl.recipe import RLRecipe

    with pytest.raises(UserError, match=message):
        RLRecipe(model="m", **fields).validate()
    RLRecipe(model="m", advantage="grpo", beta=0.0, kl_loss_coef=0.001, entropy_coeff=0.001,
             loss_agg_mode="token-mean", ratio_level="sequence", max_sampling_rounds=0).validate()
