"""RL glue: recipes build on CPU without weights, rewards agree across 2 processes, clipping fires, resume works."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import run_train as _train
from tiny_runs import save_tiny_model as _tiny_model

from frugalthink.rl.recipe import build_rloo_config
from frugalthink.rl.reward_fn import LengthReward
from frugalthink.rl.train import load_recipe
from frugalthink.tasks import get_task
from frugalthink.tasks.base import Problem
from frugalthink.util.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("recipe", ["tiny/rl.yaml", "tiny/conditioned.yaml", "tiny/tally/rl.yaml",
                                    "r1-distill-qwen-1.5b/rl.yaml", "r1-distill-qwen-7b/rl.yaml",
                                    "r1-distill-qwen-1.5b/conditioned.yaml", "r1-distill-qwen-7b/conditioned.yaml"])
def test_recipes_build_trainer_config_on_cpu(recipe, tmp_path):
    rec = load_recipe(str(ROOT / "recipes" / recipe))
    cfg = build_rloo_config(rec, tmp_path)
    assert cfg.num_generations == 8
    assert cfg.beta == 0.001 and cfg.epsilon == 0.2
    assert cfg.normalize_advantages is False
    assert cfg.steps_per_generation == 2 * rec.gradient_accumulation_steps  # two optimizer steps per rollout
    assert cfg.temperature == 1.0
    assert cfg.max_steps == 2 * rec.rollouts
    # AdamW (0.9, 0.95) as the official run (OpenRLHF's --adam_betas); the tiny recipes keep transformers' 0.999
    assert (cfg.adam_beta1, cfg.adam_beta2) == (0.9, 0.95 if "r1" in recipe else 0.999)
    samples_per_update = cfg.per_device_train_batch_size * rec.gradient_accumulation_steps * rec.num_processes
    assert samples_per_update * rec.updates_per_rollout == rec.prompts_per_rollout * 8
    if "conditioned" in recipe:  # equal budget: the sum of the separate runs' rollouts
        per_alpha = load_recipe(str(ROOT / "recipes" / recipe.replace("conditioned", "rl")))
        assert rec.alphas and rec.rollouts == len(rec.alphas) * per_alpha.rollouts
        assert set(rec.efforts.values()) <= set(rec.alphas)
    if "r1" in recipe:
        assert rec.prompts_per_rollout == 32 and rec.rollouts == 100 * (4 if "conditioned" in recipe else 1)
        assert rec.num_prompts == 3200
        assert samples_per_update == 128
        assert cfg.use_vllm and cfg.bf16 and rec.max_completion_length == 32000
        assert rec.learning_rate == (5e-6 if "1.5b" in recipe else 2e-6)
        assert rec.update_rule == "official" and cfg.warmup_steps == 6 and cfg.lr_scheduler_type == "constant_with_warmup"
        assert rec.task == "hf:daman1209arora/compression_dataset" and rec.task_options["gold"] == "boxed"
        assert rec.eval["tasks"] == {"gsm8k": 1, "math500": 3, "aime24": 32} and rec.eval["temperature"] == 0.6
        assert rec.eval["top_p"] == 0.95


@pytest.mark.parametrize("text,message", [
    ("model: m\nalpha: 1.2\n", "alpha"),
    ("model: m\nlearning_rat: 0.1\n", "unknown field.*learning_rat"),
    ("model: m\nrollouts: many\n", "rollouts: expected an integer"),
    ("model: m\n  x: [\n", "invalid YAML"),
    ("alpha: 0.1\n", "missing field 'model'"),
    ("model: m\nreward: kimmi\n", "reward: unknown 'kimmi'"),
    ("model: m\nreward: kimi\nreward_options: {beta: 1}\n", "reward_options: beta not an option of reward 'kimi'"),
    ("model: m\nreward: l1_max\nreward_options: {targets: [50, 10]}\n", "reward_options.targets"),
    ("model: m\nupdate_rule: ppo\n", "update_rule: unknown 'ppo'"),
    ("model: m\ngeneration_engine: turbo\n", "generation_engine: unknown 'turbo'"),
    ("model: m\nupdates_per_rollout: 0\n", "updates_per_rollout must be positive"),
    ("model: m\neval: {tasks: {gsm9k: 1}}\n", "eval.tasks: unknown task 'gsm9k'"),
    ("model: m\neval: {temp: 0.6}\n", "eval: unknown key"),
    ("model: m\neval: {top_p: 1.5}\n", r"bad.yaml: eval.top_p: must be a number in"),
    ("model: m\nadam_beta2: 1.0\n", "adam_beta2 must be in"),
])
def test_recipe_errors_name_the_field(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(UserError, match=message):
        load_recipe(str(bad))


def test_the_demo_trains_with_the_shipped_recipe_and_recipes_resolve_by_name(tmp_path):
    from dataclasses import asdict

    from frugalthink.studies.demo import demo_recipes

    for task, name in (("chain", "tiny/rl"), ("tally", "tiny/tally/rl")):  # the demo's recipe is the shipped one
        _, rl = demo_recipes(tmp_path, quick=False, task=task)
        assert {k for k, v in asdict(rl).items() if asdict(load_recipe(name))[k] != v} == {"model"}
    shipped = load_recipe("tiny/rl")
    assert load_recipe(str(ROOT / "recipes" / "tiny" / "rl.yaml")) == shipped  # the checkout's link, same file
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {ROOT / 'recipes' / 'tiny' / 'rl.yaml'}\nrollouts: 3\n")
    assert load_recipe(str(child)).rollouts == 3 and load_recipe(str(child)).learning_rate == shipped.learning_rate
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(UserError, match="loops back"):
        load_recipe(str(loop))
    with pytest.raises(UserError, match="no shipped recipe of that name.*tiny/rl"):
        load_recipe("tiny/rll")


def _reward_inputs():
    # 3 prompts x 4 samples, consecutive as TRL lays them out; the middle group straddles the two ranks' halves.
    # Prompts 1 and 3 share a problem id (duplicates in a user's data): groups still come from positions.
    task = get_task("chain")
    pids = ["111"] * 4 + ["222"] * 4 + ["111"] * 4
    answers = ["3"] * 4 + ["6"] * 4 + ["3"] * 4
    eos = 1
    texts, ids = [], []
    for i, a in enumerate(answers):
        right = i % 5 != 0
        texts.append(f"<think>{'+1=1' * (i % 4)}</think>\\boxed{{{a if right else 0}}}")
        ids.append([7] * (3 + 2 * (i % 4)) + ([eos] if i != 7 else []))  # sample 7 is truncated
    return task, pids, answers, texts, ids


def _dist_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    task, pids, answers, texts, ids = _reward_inputs()
    half = len(pids) // world
    sl = slice(rank * half, (rank + 1) * half)
    reward = LengthReward(task, 0.3, {1}, num_generations=4)
    r = reward(prompts=[""] * half, completions=texts[sl], completion_ids=ids[sl], answer=answers[sl],
               problem_id=pids[sl])
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(r))
    dist.destroy_process_group()


def test_two_processes_give_the_same_rewards_as_one(tmp_path):
    import socket

    import torch.multiprocessing as mp

    task, pids, answers, texts, ids = _reward_inputs()
    single = LengthReward(task, 0.3, {1}, num_generations=4)(prompts=[""] * 12, completions=texts, completion_ids=ids,
                                              answer=answers, problem_id=pids)
    assert single[7] == 0.0  # truncated -> wrong
    assert len({round(x, 6) for x in single}) > 3  # the length penalty actually differentiates
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    both = json.loads((tmp_path / "rank0.json").read_text()) + json.loads((tmp_path / "rank1.json").read_text())
    assert both == pytest.approx(single)
    # Without gathering, a rank holds half a group and could not form the prompt's statistics at all:
    with pytest.raises(ValueError, match="groups of num_generations=4"):
        LengthReward(task, 0.3, {1}, num_generations=4)(prompts=[""] * 6, completions=texts[:6],
                                                         completion_ids=ids[:6], answer=answers[:6],
                                                         problem_id=pids[:6])


def test_groups_come_from_positions_not_problem_ids():
    from frugalthink.rl import rewards as R

    task, pids, answers, texts, ids = _reward_inputs()
    got = LengthReward(task, 0.3, {1}, num_generations=4)(prompts=[""] * 12, completions=texts, completion_ids=ids,
                                                           answer=answers, problem_id=pids)
    correct = [g.correct for g in task.grade(texts, [Problem(p, "", a) for p, a in zip(pids, answers)],
                                             [not i or i[-1] != 1 for i in ids])]
    lengths = [len(i) for i in ids]
    assert got == pytest.approx(R.efficiency_rewards(correct, lengths, [i // 4 for i in range(12)], 0.3))
    assert got != pytest.approx(R.efficiency_rewards(correct, lengths, pids, 0.3))  # grouping by id would differ


def _log(out):
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("rule", ["trl", "official"])
def test_clipping_fires_on_the_second_update(tmp_path, rule):
    # A random model gets every chain answer wrong, so the efficiency reward is 0 for all and (policy = reference at
    # the start, KL 0) carries no signal; DAPO's length-dependent overlong shaping gives one under both rules.
    reward = "dapo"
    _tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    res = _train(["--set", f"model={tmp_path / 'm'}", "--set", "rollouts=3", "--set", "prompts_per_rollout=4",
                  "--set", "max_completion_length=24", "--set", "learning_rate=0.05", "--set", "threads=1",
                  "--set", f"update_rule={rule}", "--set", f"reward={reward}", "--out", str(out)])
    assert res.returncode == 0, res.stderr[-2000:]
    log = _log(out)
    assert [r["step"] for r in log] == list(range(1, 7))
    first_updates = [r["clip_ratio"] for r in log if r["step"] % 2 == 1]
    assert all(c == 0 for c in first_updates)  # ratio is exactly 1 on the rollout's first update
    assert any(r["clip_ratio"] > 0 for r in log if r["step"] % 2 == 0)
    for key in ("reward", "accuracy", "tokens_mean", "tokens_median", "frac_all_correct", "frac_all_wrong", "kl",
                "tokens_wrong_mean", "truncated_frac", "entropy"):
        assert key in log[0]
    assert all("s_per_rollout" in r and r["gen_tokens_per_s"] > 0 for r in log if r["step"] % 2 == 0)
    assert [line.split("|")[0].strip() for line in res.stdout.splitlines() if line.startswith("step")] == [
        f"step {i:4d}" for i in range(1, 7)]  # a console line for every optimizer step
    assert "warning (step 1): " in res.stdout  # most completions truncated
    cfg = json.loads((out / "frugalthink_run.json").read_text())
    assert cfg["config"]["reward"] == "dapo" and cfg["config"]["update_rule"] == rule and cfg["frugalthink_version"]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


def test_resume_after_kill_continues_from_checkpoint(tmp_path):
    _tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    common = ["--set", f"model={tmp_path / 'm'}", "--set", "rollouts=3", "--set", "prompts_per_rollout=4",
              "--set", "max_completion_length=16", "--set", "save_every=1", "--set", "threads=1", "--out", str(out)]
    crashed = _train(common, env={"FRUGALTHINK_KILL_AT_STEP": "4"})  # SIGKILL itself after step 4's checkpoint
    assert crashed.returncode != 0
    assert (out / "checkpoint-4").exists() and not (out / "train_summary.json").exists()
    again = _train(common)
    assert again.returncode != 0 and "--resume" in again.stderr
    resumed = _train(common + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == 4
    assert [r["step"] for r in _log(out)] == list(range(1, 7))


def test_base_recipe_file_matches_the_defaults_the_demo_uses():
    from frugalthink.organisms.base import load_base_recipe
    from frugalthink.organisms.sft import BaseRecipe

    assert load_base_recipe(str(ROOT / "recipes" / "tiny" / "base.yaml"), []) == BaseRecipe()
    # the tally recipe's task settings are TallyConfig's defaults (one source: what `get_task("tally")` builds)
    tally = load_base_recipe(str(ROOT / "recipes" / "tiny" / "tally" / "base.yaml"), [])
    assert tally.task == "tally" and tally.tally == BaseRecipe().tally


def test_two_process_training_writes_each_file_once(tmp_path):
    """torchrun with 2 CPU processes (gloo): the official rule's cross-process whitening runs, only rank 0 writes."""
    import shutil

    _tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    with socket_port() as port:
        res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), "-m", "frugalthink.cli",
                              "train", "--recipe", "tiny/rl", "--set", f"model={tmp_path / 'm'}", "--set", "rollouts=2",
                              "--set", "prompts_per_rollout=4", "--set", "max_completion_length=16", "--set",
                              "threads=1", "--set", "reward=dapo", "--set", "save_every=1", "--out", str(out)],
                             capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WORLD_SIZE=2" in res.stdout and res.stdout.count("trained reward=dapo") == 1
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4]  # one row per step, not one per rank
    assert json.loads((out / "frugalthink_run.json").read_text())["config"]["num_processes"] == 2
    assert (out / "train_summary.json").exists() and (out / "checkpoint-4").exists()


@pytest.mark.parametrize("options", [["dynamic_sampling=true", "reward=dler", "max_sampling_rounds=3",
                                      "update_rule=official"],
                                     ["update_rule=drpo", "reward=correctness", "updates_per_rollout=1", "beta=0"]])
def test_two_process_dynamic_sampling_and_drpo(tmp_path, options):
    """torchrun with 2 CPU processes: dynamic sampling gathers each round's rows from both processes and refills
    them alike (the random model answers every prompt wrong, so every group is flat and all three rounds run); DRPO
    takes its rank's rows of the gathered rewards."""
    import shutil

    _tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    sets = [f"model={tmp_path / 'm'}", "rollouts=2", "prompts_per_rollout=4", "max_completion_length=12",
            "threads=1", "save_every=1", *options]
    with socket_port() as port:
        res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), "-m", "frugalthink.cli",
                              "train", "--recipe", "tiny/rl", *[a for x in sets for a in ("--set", x)], "--out",
                              str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = _log(out)
    if "dynamic_sampling=true" in options:
        rolls = [r for r in log if "sampling_rounds" in r]
        assert [r["sampling_rounds"] for r in rolls] == [3.0, 3.0] and all(r["informative_final"] == 0 for r in rolls)
        assert [r["step"] for r in log] == [1, 2, 3, 4]
    else:
        assert [r["step"] for r in log] == [1, 2]  # one optimizer step per rollout


@pytest.mark.parametrize("size,lr", [("1.5b", 2e-6), ("7b", 1e-6)])
def test_r1_drpo_recipe_carries_drpos_settings(size, lr, tmp_path):
    """DRPO's R1-Distill recipe: the paper's data and evaluation (rl.yaml), DRPO's loss and its published settings,
    whole groups in every micro-batch, and a trainer config that builds on CPU."""
    from frugalthink.peers.drpo import DEFAULTS

    base = load_recipe(f"r1-distill-qwen-{size}/rl")
    rec = load_recipe(f"r1-distill-qwen-{size}/drpo")
    cfg = build_rloo_config(rec, tmp_path)
    assert rec.update_rule == "drpo" and rec.reward == "correctness" and rec.beta == 0.0
    assert rec.model == base.model and rec.task == base.task and rec.eval == base.eval
    assert {**DEFAULTS, **rec.drpo_options} == {"lambda": 0.1, "tau": 10.0, "kl_delta": 1e-4, "kl_beta": 1e3}
    assert rec.learning_rate == lr and rec.warmup_steps == 0 and rec.max_completion_length == 8192
    assert cfg.temperature == 0.6 and cfg.steps_per_generation == 4 and cfg.bf16 and cfg.use_vllm
    assert rec.prompts_per_rollout * rec.num_generations == 256 and rec.rollouts == base.rollouts  # same budget
    assert cfg.per_device_train_batch_size % rec.num_generations == 0  # whole groups per micro-batch


class socket_port:
    def __enter__(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc):
        return False


def test_health_warnings_in_words():
    from frugalthink.rl.run_log import health_warnings

    calm = [{"kl": 0.010, "clip_ratio": 0.01}] * 5
    assert health_warnings({"frac_all_correct": 0.5, "frac_all_wrong": 0.2, "truncated_frac": 0.05, "kl": 0.011,
                            "clip_ratio": 0.012}, calm) == []
    words = " ".join(health_warnings({"frac_all_correct": 0.85, "frac_all_wrong": 0.1, "truncated_frac": 0.3,
                                      "kl": 0.2, "clip_ratio": 0.3}, calm))
    for phrase in ("95% of prompt groups", "30% of completions hit max_completion_length", "KL to the reference jumped"):
        assert phrase in words
    assert health_warnings({"kl": 0.2}, []) == []  # no history, no jump
    assert health_warnings({"clip_ratio": 0.19}, calm) == []  # a spike a healthy sequence-level run shows here
    assert health_warnings({"clip_ratio": 0.35}, calm)[0].startswith("35% of the batch")


def test_report_to_passes_through_to_trl(tmp_path):
    rec = load_recipe("tiny/rl", overrides=["report_to=[tensorboard]", "warmup_steps=3"])
    cfg = build_rloo_config(rec, tmp_path)
    assert cfg.report_to == ["tensorboard"] and cfg.warmup_steps == 3
    assert cfg.lr_scheduler_type == "constant_with_warmup"


def test_dler_options_reach_trl_and_bad_values_name_the_field(tmp_path):
    rec = load_recipe("tiny/rl", None, ["epsilon_high=0.28", "batch_normalize=true"])
    cfg = build_rloo_config(rec, tmp_path)
    assert cfg.epsilon == 0.2 and cfg.epsilon_high == 0.28 and cfg.normalize_advantages is True
    assert build_rloo_config(load_recipe("tiny/rl", None, []), tmp_path).epsilon_high is None
    with pytest.raises(UserError, match="epsilon_high must be in"):
        load_recipe("tiny/rl", None, ["epsilon_high=1.5"])
    with pytest.raises(UserError, match="batch_normalize: the KL goes in as a loss"):
        load_recipe("tiny/rl", None, ["batch_normalize=true", "update_rule=official"])
    official = load_recipe("tiny/rl", None, ["batch_normalize=true", "update_rule=official", "beta=0"])
    assert build_rloo_config(official, tmp_path).normalize_advantages is True


def test_upper_clip_is_its_own_bound():
    import torch

    from frugalthink.rl.update_rule import ppo_token_loss

    old = torch.zeros(1, 2)
    logps = torch.log(torch.tensor([[1.25, 0.7]]))  # ratios 1.25 (advantage +1) and 0.7 (advantage -1)
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    sym, _ = ppo_token_loss(logps, old, adv, mask, 0.2)
    asym, clip = ppo_token_loss(logps, old, adv, mask, 0.2, 0.28)
    assert sym.item() == pytest.approx(-(1.2 - 0.8) / 2)   # both clipped at 1 +- 0.2
    assert asym.item() == pytest.approx(-(1.25 - 0.8) / 2)  # 1.25 is inside the upper clip 1.28
    assert clip["clip_high"].item() == 0 and clip["clip_low"].item() == 0.5


def test_rollouts_of_the_fast_engine_equal_trls_generate(tmp_path, monkeypatch):
    """The trainer samples rollouts with `frugalthink.generation.decoding.sample`; on the same seed they are TRL's generate
    path's rollouts (short completions, so that no row leaves the batch and the random streams stay aligned)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from frugalthink.generation import decoding
    from frugalthink.rl.recipe import RLRecipe
    from frugalthink.rl.trainer import FrugalRLOOTrainer
    from frugalthink.tasks.prompts import build_prompt, encode_prompt

    _tiny_model(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    task = get_task("chain")
    problems = task.load("train")[:8]
    recipe = RLRecipe(model=str(tmp_path / "m"), prompts_per_rollout=4, rollouts=1, max_completion_length=6,
                      threads=1)
    data = Dataset.from_list([{"prompt": build_prompt(tok, task, p), "answer": p.answer, "problem_id": p.id}
                              for p in problems])
    trainer = FrugalRLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"),
                                reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                                args=build_rloo_config(recipe, tmp_path / "run"), train_dataset=data,
                                processing_class=tok)
    prompt_ids = [encode_prompt(tok, build_prompt(tok, task, p)) for p in problems for _ in range(4)]
    calls = []
    real = decoding.sample
    monkeypatch.setattr(decoding, "sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(1)
    fast = trainer._generate_single_turn(prompt_ids, None, {})
    assert calls == [1]
    trainer.generation_engine = "hf"
    torch.manual_seed(1)
    assert trainer._generate_single_turn(prompt_ids, None, {}) == fast
    assert calls == [1]
    assert all(1 <= len(c) <= 6 for c in fast)
    nucleus = build_rloo_config(recipe, tmp_path / "run2")
    nucleus.top_p = 0.9  # the fast engine has no top-p: refused, not silently ignored
    with pytest.raises(ValueError, match="top_p=0.9.*generation_engine 'hf'"):
        FrugalRLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"),
                          reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=nucleus,
                          train_dataset=data, processing_class=tok)



@pytest.mark.parametrize("size", ["1.5b", "7b"])
@pytest.mark.parametrize("peer", ["dler", "laser", "laser_d", "laser_de"])
def test_r1_peer_recipes_carry_the_papers_settings(size, peer, tmp_path):
    """The peers' R1-Distill recipes: the paper's data, trainer and evaluation (rl.yaml) with each peer's own reward
    and settings, and a trainer config that builds on CPU."""
    base = load_recipe(f"r1-distill-qwen-{size}/rl")
    rec = load_recipe(f"r1-distill-qwen-{size}/{peer}")
    cfg = build_rloo_config(rec, tmp_path)
    assert rec.reward == peer and rec.alpha == 0.0 and rec.model == base.model and rec.task == base.task
    assert rec.eval == base.eval and rec.update_rule == "official" and cfg.bf16 and cfg.use_vllm
    assert rec.learning_rate == 1e-6 and cfg.epsilon_high == 0.28 and cfg.epsilon == 0.2
    assert rec.prompts_per_rollout * rec.num_generations == 256  # the samples of a rollout, as in rl.yaml
    opts = rec.resolved_reward_options()
    if peer == "dler":
        assert opts == {"limit": 4000} and rec.max_completion_length == 4000 and rec.num_generations == 16
        # DLER's dynamic sampling, with whole groups on each of the 8 processes
        assert rec.dynamic_sampling and rec.prompts_per_rollout % rec.num_processes == 0
    if peer == "laser":
        assert opts == {"target": 4096, "bonus": 0.5} and rec.max_completion_length == 16384
    if peer in ("laser_d", "laser_de"):  # Laser-DE: Laser-D's settings, its own reward
        assert opts["monitor_prompts"] == 500 and opts["monitor_every"] == 20 and opts["monitor_samples"] == 8
        assert opts["grid"] == list(range(1024, 16385, 1024)) and opts["monitor_temperature"] == 0.6


@pytest.mark.parametrize("bf16", [False, True])
def test_a_5e_6_step_moves_every_weight_whatever_bf16_says(bf16, tmp_path):
    """lr 5e-6 is below bf16's spacing at a weight of 0.02 (1.2e-4): the trainer must update fp32 master weights,
    bf16 being autocast around them (a pure-bf16 AdamW drops ~92% of the update, and all of it on the norms)."""
    import torch
    from datasets import Dataset
    from transformers import Trainer

    from frugalthink.generation.model_files import load_causal_lm
    from frugalthink.rl.recipe import load_dtype

    _tiny_model(tmp_path / "m")
    rec = load_recipe("tiny/rl", None, [f"model={tmp_path / 'm'}", f"bf16={str(bf16).lower()}", "learning_rate=5e-6",
                                        "rollouts=1", "updates_per_rollout=1", "prompts_per_rollout=1",
                                        "num_generations=2", "threads=1"])
    model = load_causal_lm(rec.model, dtype=load_dtype(rec))
    before = {name: w.detach().clone() for name, w in model.named_parameters()}
    args = build_rloo_config(rec, tmp_path / "run")
    assert args.bf16 is bf16 and args.max_steps == 1 and args.learning_rate == 5e-6
    rows = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [5, 6, 7, 8, 9, 10]}] * 2
    Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows)).train()
    for name, w in model.named_parameters():
        moved = (w.detach() != before[name]).float().mean().item()
        assert moved > 0.99, f"{name}: {moved:.0%} of the weights moved"
        assert w.dtype == torch.float32, name


def test_bf16_weights_are_loaded_only_under_deepspeed(monkeypatch):
    import torch

    from frugalthink.rl.recipe import load_dtype

    rec = load_recipe("r1-distill-qwen-1.5b/rl")
    assert rec.bf16 and load_dtype(rec) == torch.float32  # one GPU, no DeepSpeed: fp32 master weights
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # accelerate launch --config_file zero2.yaml
    assert load_dtype(rec) == torch.bfloat16  # DeepSpeed keeps its own fp32 master copy
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    assert load_dtype(load_recipe("r1-distill-qwen-1.5b/rl", None, ["deepspeed=ds.json"])) == torch.bfloat16


def test_a_finished_run_continues_to_more_rollouts_and_refuses_another_recipe(tmp_path):
    from frugalthink.rl.train import train

    _tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    sets = [f"model={tmp_path / 'm'}", "prompts_per_rollout=4", "max_completion_length=16", "threads=1"]
    first = _train([a for s in sets + ["rollouts=1"] for a in ("--set", s)] + ["--out", str(out)])
    assert first.returncode == 0, first.stderr[-2000:]

    def recipe(*extra, alpha=None):
        return load_recipe("tiny/rl", alpha, sets + list(extra))

    assert train(recipe("rollouts=1"), out, console=False)["optimizer_steps"] == 2  # the same run: nothing to do
    for resume in (False, True):  # another alpha is another experiment, with or without --resume
        with pytest.raises(UserError, match="holds a run of another recipe: alpha 0.2 there, 0.4 here"):
            train(recipe("rollouts=1", alpha=0.4), out, resume=resume, console=False)
    with pytest.raises(UserError, match="finished run of 1 rollouts; pass --resume to continue it to 2"):
        train(recipe("rollouts=2"), out, console=False)
    longer = _train([a for s in sets + ["rollouts=2"] for a in ("--set", s)] + ["--out", str(out), "--resume"])
    assert longer.returncode == 0, longer.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["rollouts"] == 2 and summary["optimizer_steps"] == 4 and summary["resumed_from_step"] == 2
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4]
    with pytest.raises(UserError, match="finished run of 2 rollouts; rollouts=1"):
        train(recipe("rollouts=1"), out, resume=True, console=False)
