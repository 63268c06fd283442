"""DRPO's loss on hand-made groups: length weights among correct answers only, a correct answer never pushed down,
the KL hinge, and the trainer's DRPO step."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalthink.peers.drpo import drpo_loss, drpo_objective, kl_hinge, positive_weights


def test_positive_weights_pinned():
    correct = torch.tensor([True, True, False, True, True])
    lengths = torch.tensor([10, 30, 5, 50, 50])
    groups = torch.tensor([0, 0, 0, 1, 1])
    w = positive_weights(correct, lengths, groups, max_len=100, lam=0.1)
    # group 0: scores (1 - 0.1) / 0.1 = 9 and (1 - 0.3) / 0.1 = 7 -> softmax; the wrong one gets 0
    e9, e7 = math.exp(9), math.exp(7)
    assert w.tolist() == pytest.approx([e9 / (e9 + e7), e7 / (e9 + e7), 0.0, 0.5, 0.5])


def test_objective_pinned_and_one_sided_groups_count_in_q():
    seq = torch.tensor([-1.0, -2.0, -3.0, -0.5, -0.7])
    correct = torch.tensor([True, True, False, True, True])
    groups = torch.tensor([0, 0, 0, 1, 1])
    w = torch.tensor([0.75, 0.25, 0.0, 0.5, 0.5])
    # group 0: 0.75 * -1 + 0.25 * -2 - 10 * log(exp(-3 / 10)) = -1.25 + 3; group 1 (all right) adds 0; Q = 2
    assert drpo_objective(seq, correct, w, groups, tau=10.0).item() == pytest.approx(-(1.75) / 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 200), st.floats(-5, 0)), min_size=2, max_size=12))
def test_correct_answers_are_never_pushed_down(samples):
    """The decoupling DRPO is named for: d loss / d s_i <= 0 for every correct answer, however long, and >= 0 for
    every wrong one."""
    correct = torch.tensor([c for c, _, _ in samples])
    lengths = torch.tensor([n for _, n, _ in samples])
    seq = torch.tensor([s for _, _, s in samples], requires_grad=True)
    groups = torch.arange(len(samples)) // 4
    w = positive_weights(correct, lengths, groups, max_len=200)
    drpo_objective(seq, correct, w, groups).backward()
    grad = seq.grad if seq.grad is not None else torch.zeros_like(seq)
    assert (grad[correct] <= 1e-12).all() and (grad[~correct] >= -1e-12).all()


def test_kl_hinge_is_off_below_delta_and_linear_above():
    mask = torch.ones(1, 4)
    old = torch.zeros(1, 4)
    small, kl = kl_hinge(torch.full((1, 4), -1e-5), old, mask, delta=1e-4, beta=1e3)
    assert small.item() == 0.0 and kl.item() == pytest.approx(1e-5)
    term, kl = kl_hinge(torch.full((1, 4), -0.01), old, mask, delta=1e-4, beta=1e3)
    assert term.item() == pytest.approx(1e3 * (0.01 - 1e-4) * 0.01)


def test_loss_uses_token_means_and_adds_the_hinge():
    logps = torch.tensor([[-1.0, -3.0, 0.0], [-4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, info = drpo_loss(logps, logps.detach(), mask, torch.tensor([True, False]), torch.tensor([1.0, 0.0]),
                           torch.tensor([0, 0]), {"tau": 1.0})
    # s = [-2, -4]; J = -2 - log(exp(-4)) = 2; Q = 1; KL = 0 -> no hinge
    assert loss.item() == pytest.approx(-2.0) and info["kl"].item() == 0.0


def _drpo_trainer(tmp_path, updates_per_rollout: int):
    """A DRPO trainer on the random tiny model, 4 prompts per rollout, and the 8 training prompts it draws from."""
    from datasets import Dataset
    from tiny_runs import save_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from frugalthink.rl.recipe import RLRecipe, build_rloo_config
    from frugalthink.rl.trainer import FrugalRLOOTrainer
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    save_tiny_model(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    task = get_task("chain")
    data = Dataset.from_list([{"prompt": build_prompt(tok, task, p), "answer": p.answer, "problem_id": p.id}
                              for p in task.load("train")[:8]])
    recipe = RLRecipe(model=str(tmp_path / "m"), prompts_per_rollout=4, rollouts=1, max_completion_length=8,
                      threads=1, update_rule="drpo", updates_per_rollout=updates_per_rollout, beta=0.0)
    recipe.validate()
    trainer = FrugalRLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"),
                                reward_funcs=[lambda completion_ids, **kw: [float(sum(c) % 2) for c in completion_ids]],
                                args=build_rloo_config(recipe, tmp_path / "run"), train_dataset=data,
                                processing_class=tok, update_rule="drpo")
    trainer.model.train()
    return trainer, data


def test_trainer_drpo_step(tmp_path):
    trainer, data = _drpo_trainer(tmp_path, updates_per_rollout=1)
    k = trainer.num_generations
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions([dict(data[i]) for i in range(4) for _ in range(k)])
    for g in range(4):
        rows = batch["drpo_group"] == g
        pos = rows & batch["drpo_correct"]
        if pos.any():
            assert batch["drpo_weight"][pos].sum().item() == pytest.approx(1.0)
        assert (batch["drpo_weight"][rows & ~batch["drpo_correct"]] == 0).all()
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0
                                        for p in trainer.model.parameters())


@pytest.mark.parametrize("override,message", [
    ({"updates_per_rollout": 64}, "micro-batch must hold whole groups"),
    ({"beta": 0.001}, "beta must be 0"),
    ({"dynamic_sampling": True}, "dynamic_sampling must be off"),
    ({"drpo_options": {"lamda": 0.1}}, "drpo_options: lamda unknown"),
    ({"num_processes": 3, "prompts_per_rollout": 16}, r"update_rule drpo: .*prompts_per_rollout \(16\) must be a multiple"),
    ({"update_rule": "trl", "dynamic_sampling": True, "num_processes": 3, "prompts_per_rollout": 16},
     r"dynamic_sampling: each process must hold whole prompt groups"),
])
def test_drpo_recipe_errors_name_the_field(override, message):
    from frugalthink.rl.recipe import RLRecipe
    from frugalthink.util.errors import UserError

    base = {"model": "m", "update_rule": "drpo", "updates_per_rollout": 1, "beta": 0.0}
    with pytest.raises(UserError, match=message):
        RLRecipe(**{**base, **override}).validate()


def test_each_process_takes_its_rows_of_the_gathered_rewards():
    """Two processes, two rows (one group of k = 2) each: rank 1 reads rewards 2-3, not 0-1. Weights by hand:
    softmax over the correct ones of (1 - len / 10) / 0.1 = (5, 1) -> (e^4 / (1 + e^4), 1 / (1 + e^4))."""
    import math

    from frugalthink.peers.drpo import process_inputs

    lengths = torch.tensor([5, 9])
    correct, groups, weights = process_inputs([0.0, 1.0, 1.0, 1.0], lengths, rank=1, k=2, max_len=10)
    assert correct.tolist() == [True, True] and groups.tolist() == [0, 0]
    e4 = math.exp(4)
    assert torch.allclose(weights, torch.tensor([e4 / (1 + e4), 1 / (1 + e4)]), atol=1e-6)
    correct, _, weights = process_inputs([0.0, 1.0, 1.0, 1.0], lengths, rank=0, k=2, max_len=10)
    assert correct.tolist() == [False, True] and weights.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="whole groups"):
        process_inputs([1.0] * 6, torch.tensor([1, 2, 3]), rank=0, k=2, max_len=10)
    with pytest.raises(ValueError, match="no slice"):
        process_inputs([1.0] * 4, lengths, rank=2, k=2, max_len=10)


def test_drpo_splits_a_rollout_into_micro_batches_of_whole_groups(tmp_path):
    """Two updates per rollout: TRL shuffles a rollout's rows before splitting it; DRPO splits in order, so each
    micro-batch holds whole groups (its loss terms are per question)."""
    trainer, data = _drpo_trainer(tmp_path, updates_per_rollout=2)
    k = trainer.num_generations
    rollout = [dict(data[i]) for i in range(4) for _ in range(k)]
    torch.manual_seed(0)
    chunks = []
    for step in range(2):
        trainer._step = step
        chunks.append(trainer._prepare_inputs(rollout))
    for i, chunk in enumerate(chunks):
        assert chunk["drpo_group"].tolist() == [2 * i] * k + [2 * i + 1] * k
        assert chunk["completion_ids"].size(0) == 2 * k


def _hinge_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from frugalthink.peers.drpo import kl_hinge

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    logps, old, mask = _hinge_batch()
    rows = slice(rank * 2, rank * 2 + 2)
    mine = logps[rows].clone().requires_grad_(True)

    def all_reduce_sum(t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    term, kl = kl_hinge(mine, old[rows], mask[rows], delta=1e-4, beta=10.0, all_reduce_sum=all_reduce_sum, world=world)
    term.backward()
    # DDP averages the processes' gradients: (1/world) of each, here on each process's own rows
    torch.save({"kl": kl, "grad": mine.grad / world}, f"{out_dir}/h{rank}.pt")
    dist.destroy_process_group()


def _hinge_batch():
    g = torch.Generator().manual_seed(4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    old = -torch.rand(4, 4, generator=g) * mask
    logps = (old - 0.05 * torch.rand(4, 4, generator=g)) * mask
    return logps, old, mask


def test_the_kl_hinge_is_taken_over_the_gathered_micro_batch(tmp_path):
    """Two processes with uneven token counts: the KL is the token mean over both (DRPO's code gathers the micro-batch),
    and the mean of their gradients is the gradient of the hinge on the whole batch."""
    import socket

    import torch.multiprocessing as mp

    from frugalthink.peers.drpo import kl_hinge

    logps, old, mask = _hinge_batch()
    whole = logps.clone().requires_grad_(True)
    term, kl = kl_hinge(whole, old, mask, delta=1e-4, beta=10.0)
    term.backward()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_hinge_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"h{r}.pt") for r in (0, 1)]
    assert parts[0]["kl"].item() == pytest.approx(kl.item()) and parts[1]["kl"].item() == pytest.approx(kl.item())
    local = kl_hinge(logps[:2], old[:2], mask[:2], delta=1e-4, beta=10.0)[1]
    assert local.item() != pytest.approx(kl.item(), rel=1e-3)  # per process it would differ
    grad = torch.cat([parts[0]["grad"], parts[1]["grad"]])
    assert torch.allclose(grad, whole.grad, atol=1e-7)
