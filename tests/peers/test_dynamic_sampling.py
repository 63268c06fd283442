"""Dynamic sampling (DAPO / DLER): which groups are kept, how rows of several rounds are merged, and the trainer's
refilled rollout."""

import pytest
import torch

from frugalthink.peers import dynamic_sampling as D


def test_informative_groups_and_choice():
    assert D.informative_groups([1, 1, 0, 1, 0.5, 0.5], 2) == [1]
    assert D.informative_groups([0.0] * 4, 2) == []
    with pytest.raises(ValueError):
        D.informative_groups([1, 0, 1], 2)
    # round 0 has group 1 informative, round 1 groups 0 and 2: the rollout takes them in generation order, up to 2
    assert D.choose_groups([[1], [0, 2], [1]], 2) == [(0, 1), (1, 0)]
    # not enough informative groups after the last round: round 0's others fill in, in order
    assert D.choose_groups([[2, 3], [1]], 4) == [(0, 2), (0, 3), (1, 1), (0, 0)]
    assert D.choose_groups([[]], 2) == [(0, 0), (0, 1)]


def test_merge_pads_prompts_left_and_completions_right():
    a = {"prompt_ids": torch.tensor([[5, 6]]), "prompt_mask": torch.tensor([[1, 1]]),
         "completion_ids": torch.tensor([[7]]), "completion_mask": torch.tensor([[1]]),
         "old_per_token_logps": torch.tensor([[-0.5]]), "advantages": torch.tensor([0.3])}
    b = {"prompt_ids": torch.tensor([[4, 5, 6]]), "prompt_mask": torch.tensor([[1, 1, 1]]),
         "completion_ids": torch.tensor([[7, 8, 9]]), "completion_mask": torch.tensor([[1, 1, 1]]),
         "old_per_token_logps": torch.tensor([[-1.0, -2.0, -3.0]]), "advantages": torch.tensor([-0.3])}
    m = D.merge_rows([a, b], pad_id=0)
    assert m["prompt_ids"].tolist() == [[0, 5, 6], [4, 5, 6]] and m["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert m["completion_ids"].tolist() == [[7, 0, 0], [7, 8, 9]]
    assert m["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert m["old_per_token_logps"].tolist() == [[-0.5, 0.0, 0.0], [-1.0, -2.0, -3.0]]
    assert m["advantages"].tolist() == pytest.approx([0.3, -0.3])
    rows = D.take_rows(m, torch.tensor([1]))
    assert rows["completion_ids"].tolist() == [[7, 8, 9]]


@pytest.mark.parametrize("rule", ["trl", "official"])
def test_trainer_drops_flat_groups_and_refills(tmp_path, rule):
    """A reward that is informative only for prompts with an even problem id: round 0 keeps those groups, further
    rounds refill the rollout with more of them; flat groups never enter while informative ones are available."""
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
    problems = task.load("train")[:40]
    data = Dataset.from_list([{"prompt": build_prompt(tok, task, p), "answer": p.answer, "problem_id": str(i)}
                              for i, p in enumerate(problems)])

    def reward(prompts, completions, completion_ids, problem_id, **kw):
        return [float(sum(c) % 3) if int(pid) % 2 == 0 else 1.0 for c, pid in zip(completion_ids, problem_id,
                                                                                    strict=True)]

    recipe = RLRecipe(model=str(tmp_path / "m"), prompts_per_rollout=4, rollouts=1, max_completion_length=8,
                      threads=1, update_rule=rule, batch_normalize=rule == "trl")
    trainer = FrugalRLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"), reward_funcs=[reward],
                                args=build_rloo_config(recipe, tmp_path / "run"), train_dataset=data,
                                processing_class=tok, update_rule=rule, dynamic_sampling=True, max_sampling_rounds=4)
    k = trainer.num_generations
    inputs = [dict(data[i]) for i in (1, 2, 3, 5) for _ in range(k)]  # one even prompt, three odd ones
    torch.manual_seed(0)
    trainer.model.train()  # the rollout path of training (evaluation generates without it)
    batch = trainer._generate_and_score_completions(inputs)
    n = 4 * k
    assert batch["completion_ids"].size(0) == n and batch["prompt_ids"].size(0) == n
    assert batch["advantages"].size(0) == n
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/informative_first_round"][-1] <= 0.25  # at most the one even prompt
    assert metrics["dynamic_sampling/rounds"][-1] > 1  # refilled
    assert metrics["dynamic_sampling/informative_final"][-1] > metrics["dynamic_sampling/informative_first_round"][-1]
    if rule == "official":
        mask = batch["completion_mask"].bool()
        adv = batch["advantages"][mask]
        assert abs(adv.mean().item()) < 1e-4 and abs(adv.std(unbiased=False).item() - 1) < 1e-3  # whitened once
        assert "returns" not in batch and batch["old_per_token_logps"].shape == batch["completion_ids"].shape
    else:
        adv = batch["advantages"]  # TRL's normalisation, applied once over the final rollout
        assert abs(adv.mean().item()) < 1e-5 and abs(adv.std().item() - 1) < 1e-3


class _FakeTrainer:
    """What `DynamicSampling.rollout` uses of the trainer: every round of 2 groups of 2 is flat except where the
    script says; rows carry their round and group in ``completion_ids``."""

    def __init__(self, informative_rounds: set[int]):
        from collections import defaultdict
        from types import SimpleNamespace

        self.num_generations, self.rounds, self.informative_rounds = 2, 0, informative_rounds
        self.accelerator = SimpleNamespace(num_processes=1, process_index=0)
        self._metrics = {"train": defaultdict(list)}
        self._tokenizer = SimpleNamespace(pad_token_id=0)
        self.train_dataset = [{"prompt": f"p{i}"} for i in range(10)]
        self.args = SimpleNamespace(seed=0)

    def _score_round(self, inputs):
        r = self.rounds
        self.rounds += 1
        rewards = [1.0, 0.0, 1.0, 1.0] if r in self.informative_rounds else [1.0] * 4
        ids = torch.tensor([[r, 0], [r, 0], [r, 1], [r, 1]])
        return {"completion_ids": ids, "completion_mask": torch.ones_like(ids)}, rewards


def test_the_round_limit_fills_or_stops_and_zero_means_no_limit():
    inputs = [{"prompt": "a"}] * 4
    fill = _FakeTrainer(informative_rounds={5})
    batch = D.DynamicSampling(max_rounds=3).rollout(fill, inputs)
    assert fill.rounds == 3 and batch["completion_ids"][:, 0].tolist() == [0, 0, 0, 0]  # round 0's flat groups
    stop = _FakeTrainer(informative_rounds={5})
    with pytest.raises(RuntimeError, match="0 of 2 prompt groups informative after 3 rounds"):
        D.DynamicSampling(max_rounds=3, at_limit="error").rollout(stop, inputs)
    endless = _FakeTrainer(informative_rounds={5, 6})  # DLER: no limit, until the rollout is full
    batch = D.DynamicSampling(max_rounds=0).rollout(endless, inputs)
    assert endless.rounds == 7 and batch["completion_ids"][:, 0].tolist() == [5, 5, 6, 6]
