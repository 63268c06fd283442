"""The official update rule (Arora & Zanette's code, OpenRLHF 0.5.4 RLOO), pinned against plain-torch loops.

The reference below is written from the formulas in `frugalthink.rl.update_rule`'s docstring with explicit Python loops
(no shared code with the implementation): RLOO on the scalar reward, k1 KL per token in the reward, returns with
gamma 1, whitening over every token of the rollout, per-token PPO clip averaged per sequence then over sequences.
"""

import math
import socket

import pytest
import torch

from frugalthink.rl import update_rule as U

K = 4
# 3 prompts x 4 samples; completion lengths ragged (padding on the right).
LENGTHS = [5, 2, 7, 3, 1, 6, 4, 4, 7, 2, 5, 3]
REWARDS = [0.9, 0.0, 0.75, 0.8, 0.0, 0.0, 0.0, 0.95, 1.0, 0.6, 0.7, 0.0]
BETA, EPS = 0.001, 0.2


def _mask(lengths, width):
    return torch.tensor([[1.0 if t < n else 0.0 for t in range(width)] for n in lengths])


def reference_advantages(rewards, old, ref, lengths, beta, k):
    """Loops: per-token whitened returns, as lists of lists (valid tokens only)."""
    returns = []
    for i, n in enumerate(lengths):
        g = i // k
        others = [rewards[j] for j in range(g * k, g * k + k) if j != i]
        a = rewards[i] - sum(others) / len(others)
        rho = [-beta * (old[i][t] - ref[i][t]) + (a if t == n - 1 else 0.0) for t in range(n)]
        returns.append([sum(rho[t:]) for t in range(n)])
    flat = [x for row in returns for x in row]
    mean = sum(flat) / len(flat)
    var = sum((x - mean) ** 2 for x in flat) / len(flat)
    return [[(x - mean) / math.sqrt(var) for x in row] for row in returns]


def reference_loss(logps, old, adv, lengths, eps):
    """Loops over torch scalars (so autograd gives the reference gradients)."""
    per_seq = []
    for i, n in enumerate(lengths):
        terms = []
        for t in range(n):
            q = torch.exp(logps[i, t] - old[i][t])
            terms.append(-torch.min(q * adv[i][t], torch.clamp(q, 1 - eps, 1 + eps) * adv[i][t]))
        per_seq.append(sum(terms) / n)
    return sum(per_seq) / len(per_seq)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    width = max(LENGTHS)
    mask = _mask(LENGTHS, width)
    old = (-torch.rand(len(LENGTHS), width, generator=g) * 3) * mask
    ref = (old + 0.3 * torch.randn(len(LENGTHS), width, generator=g)) * mask
    return mask, old, ref


def test_rloo_baseline_by_position():
    r = torch.tensor(REWARDS)
    got = U.rloo_advantages(r, K)
    for i in range(len(REWARDS)):
        g = i // K
        others = [REWARDS[j] for j in range(g * K, g * K + K) if j != i]
        assert got[i].item() == pytest.approx(REWARDS[i] - sum(others) / 3, abs=1e-7)


def test_token_advantages_match_the_loops():
    mask, old, ref = _batch()
    seq = U.rloo_advantages(torch.tensor(REWARDS, dtype=torch.float64), K)
    got = U.whiten(U.token_returns(seq, old.double(), ref.double(), mask, BETA), mask)
    want = reference_advantages(REWARDS, old.double().tolist(), ref.double().tolist(), LENGTHS, BETA, K)
    for i, n in enumerate(LENGTHS):
        assert got[i, :n].tolist() == pytest.approx(want[i], abs=1e-9)
        assert not got[i, n:].any()  # padding stays zero


def test_kl_enters_every_earlier_token_and_the_reward_only_the_last():
    mask = _mask([3], 4)
    old = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0, 0.0]])
    got = U.token_returns(torch.tensor([2.0]), old, ref, mask, beta=0.1)
    # rho = [-0.05, 0, -0.05 + 2]; returns = [1.9, 1.95, 1.95]
    assert got.tolist()[0] == pytest.approx([1.9, 1.95, 1.95, 0.0])


def test_clip_is_per_token_and_loss_a_mean_of_sequence_means():
    mask = _mask([2, 1], 2)
    old = torch.zeros(2, 2)
    logps = torch.tensor([[math.log(1.5), math.log(0.9)], [math.log(0.5), 0.0]])
    adv = torch.tensor([[1.0, 1.0], [-2.0, 0.0]])
    loss, clip = U.ppo_token_loss(logps, old, adv, mask, 0.2)
    # seq 0: tokens -min(1.5, 1.2)*1 = -1.2 and -0.9 -> mean -1.05; seq 1: -min(0.5*-2, 0.8*-2) = 1.6
    assert loss.item() == pytest.approx((-1.05 + 1.6) / 2)
    assert clip["clip_high"].item() == pytest.approx(1 / 3) and clip["clip_low"].item() == pytest.approx(1 / 3)


def _tiny_trainer(tmp_path, update_rule="official"):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer
    from frugalthink.rl.recipe import RLRecipe, build_rloo_config
    from frugalthink.rl.trainer import FrugalRLOOTrainer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), seed=3).save_pretrained(
        tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")  # TRL loads the reference from this path
    recipe = RLRecipe(model="unused", num_generations=K, prompts_per_rollout=3, updates_per_rollout=1, rollouts=1,
                      max_completion_length=8, learning_rate=1e-3)
    trainer = FrugalRLOOTrainer(
        update_rule=update_rule, model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=build_rloo_config(recipe, tmp_path / "run"), processing_class=tok,
        train_dataset=Dataset.from_list([{"prompt": "A1B2:"}] * 3))
    return trainer, tok


def test_trainer_loss_and_gradients_match_plain_torch(tmp_path):
    trainer, tok = _tiny_trainer(tmp_path)
    model = trainer.model.train()  # dropout is off in these configs; train mode routes the metrics to "train"
    g = torch.Generator().manual_seed(1)
    width = max(LENGTHS)
    mask = _mask(LENGTHS, width).long()
    prompt_lens = [3, 5, 4] * 4
    P = max(prompt_lens)
    prompt_ids = torch.tensor([[tok.pad_token_id] * (P - n) + torch.randint(5, 40, (n,), generator=g).tolist()
                               for n in prompt_lens])
    prompt_mask = torch.tensor([[0] * (P - n) + [1] * n for n in prompt_lens])
    completion_ids = torch.randint(5, 40, (len(LENGTHS), width), generator=g) * mask + tok.pad_token_id * (1 - mask)
    ids = torch.cat([prompt_ids, completion_ids], 1)
    attn = torch.cat([prompt_mask, mask], 1)

    def per_token_logps():
        logits = model(input_ids=ids, attention_mask=attn).logits[:, P - 1 : -1]
        return torch.log_softmax(logits.float(), -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)

    with torch.no_grad():
        current = per_token_logps()
    # The sampling policy differs from the current one (second update of a rollout): some ratios leave [0.8, 1.2].
    old = (current + 0.4 * torch.randn(current.shape, generator=g)) * mask
    ref = (current + 0.2 * torch.randn(current.shape, generator=g)) * mask
    batch = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
             "completion_mask": mask}
    batch = trainer.rule.advantages(trainer, batch, old, ref, torch.tensor(REWARDS).unsqueeze(1), BETA)

    want_adv = reference_advantages(REWARDS, old.tolist(), ref.tolist(), LENGTHS, BETA, K)
    for i, n in enumerate(LENGTHS):
        assert batch["advantages"][i, :n].tolist() == pytest.approx(want_adv[i], abs=1e-6)

    model.zero_grad()
    loss = trainer._compute_loss(model, batch)
    loss.backward()
    got_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want = reference_loss(per_token_logps(), old.tolist(), want_adv, LENGTHS, EPS)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), abs=1e-6)
    ratios = torch.exp(current - old)[mask.bool()]
    assert ((ratios < 0.8) | (ratios > 1.2)).any() and ((ratios > 0.8) & (ratios < 1.2)).any()
    for a, b in zip(got_grads, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), (a - b).abs().max()
    assert trainer._metrics["train"]["clip_ratio/region_mean"][-1] > 0


def _whiten_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    mask, old, ref = _batch()
    half = len(LENGTHS) // world
    values, m = old[rank * half : (rank + 1) * half], mask[rank * half : (rank + 1) * half]

    def all_reduce_sum(t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    torch.save(U.whiten(values, m, all_reduce_sum), f"{out_dir}/w{rank}.pt")
    dist.destroy_process_group()


def test_whitening_over_two_processes_equals_whitening_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    mask, old, _ = _batch()
    whole = U.whiten(old, mask)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_whiten_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    both = torch.cat([torch.load(tmp_path / "w0.pt"), torch.load(tmp_path / "w1.pt")])
    assert torch.allclose(both, whole, atol=1e-6)
    alone = U.whiten(old[:6], mask[:6])  # without the all-reduce each process would whiten differently
    assert not torch.allclose(alone, whole[:6], atol=1e-3)


# ------------------------------------------------------------------ one KL coefficient per row (conditioned tiers)
ROW_BETAS = [0.05] * K + [0.001] * K + [0.0] * K  # three tiers: a strong anchor, the recipe's beta, none


def test_per_row_beta_in_the_official_returns_matches_the_loops():
    mask, old, ref = _batch()
    seq = U.rloo_advantages(torch.tensor(REWARDS, dtype=torch.float64), K)
    got = U.token_returns(seq, old.double(), ref.double(), mask, torch.tensor(ROW_BETAS))
    for i, n in enumerate(LENGTHS):
        g = i // K
        others = [REWARDS[j] for j in range(g * K, g * K + K) if j != i]
        a = REWARDS[i] - sum(others) / len(others)
        rho = [-ROW_BETAS[i] * (old[i, t].item() - ref[i, t].item()) + (a if t == n - 1 else 0.0) for t in range(n)]
        assert got[i, :n].tolist() == pytest.approx([sum(rho[t:]) for t in range(n)], abs=1e-6)


def test_trl_advantages_with_a_beta_per_row_match_the_loops(tmp_path):
    trainer, _ = _tiny_trainer(tmp_path)
    mask, old, ref = _batch()
    batch = {"completion_mask": mask}
    batch = trainer.tiers.trl_advantages(trainer, batch, old, ref, torch.tensor(REWARDS), torch.tensor(ROW_BETAS),
                                          normalize=False)
    kl = [sum(old[i, t].item() - ref[i, t].item() for t in range(n)) for i, n in enumerate(LENGTHS)]
    penalised = [r - b * x for r, b, x in zip(REWARDS, ROW_BETAS, kl, strict=True)]
    for i in range(len(LENGTHS)):
        g = i // K
        others = [penalised[j] for j in range(g * K, g * K + K) if j != i]
        assert batch["advantages"][i].item() == pytest.approx(penalised[i] - sum(others) / len(others), abs=1e-5)
    assert trainer._metrics["train"]["kl"]  # the KL is still logged with TRL's own KL term off


def test_a_trl_rollout_of_a_conditioned_run_takes_each_rows_beta_from_its_alpha(tmp_path, monkeypatch):
    from trl import RLOOTrainer

    trainer, _ = _tiny_trainer(tmp_path, update_rule="trl")
    trainer.tiers.beta = {0.0: 0.05, 0.1: 0.0}  # the third tier (0.4) uses the recipe's beta
    mask, old, ref = _batch()
    inputs = [{"alpha": a} for a in (0.0, 0.4, 0.1) for _ in range(K)]

    def rollout(self, rows):  # TRL's rollout, as the trainer sees it: the batch, and old log-probs and rewards
        assert self.beta == 0.0  # TRL's own KL-in-reward is off; the trainer adds one per row
        self._capture["old"], self._capture["rewards"] = old, torch.tensor(REWARDS).unsqueeze(1)
        return {"completion_mask": mask, "advantages": torch.zeros(len(rows))}

    monkeypatch.setattr(RLOOTrainer, "_generate_and_score_completions", rollout)
    monkeypatch.setattr(trainer, "_ref_logps", lambda batch: ref)
    batch, _ = trainer._score_round(inputs)
    want = U.kl_penalised_rloo(torch.tensor(REWARDS), ((old - ref) * mask).sum(1), torch.tensor(ROW_BETAS), K)
    assert batch["advantages"].tolist() == pytest.approx(want.tolist(), abs=1e-6)
    assert trainer.beta == BETA


def test_tier_balanced_gives_every_tier_the_rollouts_spread():
    adv = torch.tensor([0.3, -0.1, -0.2, 2.0, -1.0, -1.0, 0.5, 0.5], dtype=torch.float64)
    tiers = torch.tensor([0.0, 0.0, 0.0, 0.4, 0.4, 0.4, 0.1, 0.1])

    def std(xs):
        m = sum(xs) / len(xs)
        return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5

    total, low, high = std(adv.tolist()), std([0.3, -0.1, -0.2]), std([2.0, -1.0, -1.0])
    got = U.tier_balanced(adv, tiers)
    want = [x * total / low for x in (0.3, -0.1, -0.2)] + [x * total / high for x in (2.0, -1.0, -1.0)] + [0.5, 0.5]
    assert got.tolist() == pytest.approx(want)  # the 0.1 tier has no spread: left as it is
    assert std(got[:3].tolist()) == pytest.approx(std(got[3:6].tolist()))


def test_a_tier_balanced_trl_rollout_rescales_each_tiers_advantages(tmp_path, monkeypatch):
    from trl import RLOOTrainer

    trainer, _ = _tiny_trainer(tmp_path, update_rule="trl")
    trainer.tiers.balance = True  # no tier_beta: every row keeps the recipe's beta
    mask, old, ref = _batch()
    alphas = [a for a in (0.0, 0.4, 0.1) for _ in range(K)]

    def rollout(self, rows):
        assert self.beta == 0.0
        self._capture["old"], self._capture["rewards"] = old, torch.tensor(REWARDS).unsqueeze(1)
        return {"completion_mask": mask, "advantages": torch.zeros(len(rows))}

    monkeypatch.setattr(RLOOTrainer, "_generate_and_score_completions", rollout)
    monkeypatch.setattr(trainer, "_ref_logps", lambda batch: ref)
    batch, _ = trainer._score_round([{"alpha": a} for a in alphas])
    plain = U.kl_penalised_rloo(torch.tensor(REWARDS), ((old - ref) * mask).sum(1), BETA, K)
    want = U.tier_balanced(plain, torch.tensor(alphas))
    assert batch["advantages"].tolist() == pytest.approx(want.tolist(), abs=1e-6)
    assert batch["advantages"].tolist() != pytest.approx(plain.tolist(), abs=1e-3)


def test_row_betas_come_from_each_rows_alpha(tmp_path):
    trainer, _ = _tiny_trainer(tmp_path)
    trainer.tiers.beta = {0.0: 0.05, 0.1: 0.0}
    rows = [{"alpha": 0.0}, {"alpha": 0.4}, {"alpha": 0.1}]
    assert trainer.tiers.row_betas(trainer, rows, 0.001).tolist() == pytest.approx([0.05, 0.001, 0.0])
