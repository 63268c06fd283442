"""`frugalthink.integrations.trl.FrugalReward`: the registry's rewards inside TRL's GRPOTrainer, on one process and
on two (groups split across them)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import frugalthink.rl.reward_fn as rl
from frugalthink.integrations.trl import FrugalReward
from frugalthink.rl.rewards import REWARDS, RewardBatch
from frugalthink.tasks import get_task

HERE = Path(__file__).resolve().parent
EOS = 1


def _groups():
    """3 prompts x 4 samples of the chain task as TRL lays them out: right and wrong answers, several lengths,
    sample 7 truncated (no EOS), sample 10 without a final answer."""
    pids = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    answers = ["3"] * 4 + ["6"] * 4 + ["3"] * 4
    texts, ids = [], []
    for i, a in enumerate(answers):
        right = i % 5 != 0
        texts.append("<think>+1=1</think>" if i == 10 else f"<think>{'+1=1' * (i % 4)}</think>\\boxed{{{a if right else 0}}}")
        ids.append([7] * (3 + 2 * (i % 4) + i // 4) + ([EOS] if i != 7 else []))
    return pids, answers, texts, ids


def _expected(name, alpha, options, pids, answers, texts, ids, targets=None, task="chain"):
    """The registry's rewards on our grader's grades, groups by problem id (not by position)."""
    from frugalthink.tasks.base import Problem

    truncated = [ids_[-1] != EOS for ids_ in ids]
    grades = get_task(task).grade(texts, [Problem(id=p, question="", answer=a) for p, a in zip(pids, answers)],
                                  truncated, thinking_open=[False] * len(texts))
    correct = [g.correct for g in grades]
    formed = [g.reason not in rl.UNFORMED for g in grades]
    repeated = [False] * len(ids)
    batch = RewardBatch(correct, [len(x) for x in ids], pids, targets or [0] * len(ids), formed, repeated, alpha)
    return REWARDS[name].compute(batch, options), correct


CASES = [  # (reward, FrugalReward options, max_completion_length, the options the registry is called with)
    ("efficiency", None, None, {}),
    ("kimi", {"weight": 0.5}, None, {"weight": 0.5}),
    ("shorter_better", None, None, {"alpha": 2.0, "beta": 0.001}),
    ("grpo_lead", {"alpha": 0.2}, None, {"alpha": 0.2}),
    ("cosine", None, 12, {"max_len": 12, "min_value_wrong": -1.0, "max_value_wrong": -0.5, "min_value_correct": 0.5,
                          "max_value_correct": 1.0}),
    ("dapo", None, 15, {"max_len": 15, "cache": 3}),
    ("dler", {"limit": 8}, None, {"limit": 8}),
    ("correctness", None, None, {}),
    ("laser", None, 40, {"target": 10, "bonus": 0.5}),
    ("laser_d", {"bucket_targets": {"low": 12, "medium": 9, "high": 7}}, None,
     {"bucket_targets": {"low": 12, "medium": 9, "high": 7}, "bonus": 0.5}),
    ("l1_max", {"alpha": 0.05}, None, {"alpha": 0.05, "delta": 0.5}),
]


@pytest.mark.parametrize("name,options,cap,resolved", CASES)
def test_rewards_are_the_registry_rewards(name, options, cap, resolved):
    pids, answers, texts, ids = _groups()
    targets = [8] * 4 + [6] * 4 + [10] * 4
    extra = {"target": targets} if name == "l1_max" else {}
    reward = FrugalReward("chain", alpha=0.3, reward=name, options=options, num_generations=4, eos_token_ids=EOS,
                          max_completion_length=cap)
    got = reward(prompts=[f"q{p}" for p in pids], completions=texts, completion_ids=ids, answer=answers,
                 problem_id=pids, **extra)
    want, correct = _expected(name, 0.3, resolved, pids, answers, texts, ids, targets)
    assert got == pytest.approx(want, abs=1e-12)
    assert not correct[7] and any(correct) and not all(correct)
    if name == "efficiency":
        assert got[7] == 0.0 and len({round(x, 6) for x in got}) > 4  # truncated -> 0; lengths differentiate


def _fake_two_ranks(monkeypatch):
    """Replace rl._gather_lists by an all-gather between two threads (rank = the thread's), as torch.distributed's
    all_gather_object would give: every rank gets the rows of rank 0 then rank 1, and its own offset."""
    barrier, rows, local = threading.Barrier(2, timeout=30), {}, threading.local()

    def gather(*lists):
        rows[local.rank] = list(zip(*lists, strict=True))
        barrier.wait()
        flat = rows[0] + rows[1]
        offset = 0 if local.rank == 0 else len(rows[0])
        barrier.wait()  # nobody overwrites rows before both have read them
        return (*[[r[k] for r in flat] for k in range(len(lists))], offset)

    monkeypatch.setattr(rl, "_gather_lists", gather)
    return local


@pytest.mark.parametrize("name,options", [("efficiency", None), ("grpo_lead", None), ("kimi", {"weight": 2.0})])
def test_groups_split_across_two_ranks_get_the_whole_groups_rewards(monkeypatch, name, options):
    pids, answers, texts, ids = _groups()
    local = _fake_two_ranks(monkeypatch)
    out, errors = {}, []
    resolved = {**REWARDS[name].defaults, **(options or {})}

    def rank(r):
        local.rank = r
        sl = slice(0, 6) if r == 0 else slice(6, 12)  # group b: samples 4-5 on rank 0, 6-7 on rank 1
        try:
            reward = FrugalReward("chain", alpha=0.3, reward=name, options=options, num_generations=4,
                                  eos_token_ids=[EOS])
            out[r] = reward(prompts=[f"q{p}" for p in pids[sl]], completions=texts[sl], completion_ids=ids[sl],
                            answer=answers[sl], problem_id=pids[sl])
        except Exception as e:  # noqa: BLE001 - reported below (the other rank's barrier then times out)
            errors.append(e)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    want, _ = _expected(name, 0.3, resolved, pids, answers, texts, ids)
    assert out[0] + out[1] == pytest.approx(want, abs=1e-12)
    # what a rank would get from its own slice alone differs: group b's statistics need both halves
    alone = FrugalReward("chain", alpha=0.3, reward=name, options=options, num_generations=2, eos_token_ids=[EOS])
    monkeypatch.setattr(rl, "_gather_lists", lambda *lists: (*lists, 0))
    assert alone(prompts=[f"q{p}" for p in pids[4:6]], completions=texts[4:6], completion_ids=ids[4:6],
                 answer=answers[4:6], problem_id=pids[4:6]) != pytest.approx(want[4:6])


def test_groups_that_are_not_one_prompts_samples_are_refused():
    pids, answers, texts, ids = _groups()
    reward = FrugalReward("chain", num_generations=4, eos_token_ids=EOS)
    call = dict(completions=texts, completion_ids=ids, answer=answers)
    shuffled = pids[1:] + pids[:1]
    with pytest.raises(ValueError, match=r"samples 0-3 of the gathered batch .* problem_id \['a', 'b'\]"):
        reward(prompts=[f"q{p}" for p in pids], problem_id=shuffled, **call)
    with pytest.raises(ValueError, match="samples 0-3 .* different prompts"):  # no id column: the prompts tell
        FrugalReward("chain", num_generations=4, eos_token_ids=EOS, id_column=None)(
            prompts=[f"q{p}" for p in shuffled], **call)
    with pytest.raises(ValueError, match="samples 0-5 .* different prompts"):  # num_generations is not the trainer's
        FrugalReward("chain", num_generations=6, eos_token_ids=EOS)(prompts=[f"q{p}" for p in pids],
                                                                     problem_id=["x"] * 12, **call)
    with pytest.raises(ValueError, match="not whole groups of num_generations=5"):
        FrugalReward("chain", num_generations=5, eos_token_ids=EOS)(prompts=[f"q{p}" for p in pids], problem_id=pids,
                                                                     **call)
    with pytest.raises(ValueError, match="no 'solution' column"):
        FrugalReward("chain", num_generations=4, eos_token_ids=EOS, answer_column="solution")(
            prompts=[f"q{p}" for p in pids], problem_id=pids, **call)
    with pytest.raises(ValueError, match="l1_max needs a 'target' column"):
        FrugalReward("chain", reward="l1_max", num_generations=4, eos_token_ids=EOS)(
            prompts=[f"q{p}" for p in pids], problem_id=pids, **call)


@pytest.mark.parametrize("kwargs,message", [
    ({"alpha": 1.0}, r"alpha must be a number in \[0, 1\)"),
    ({"reward": "effciency"}, "reward: unknown 'effciency'"),
    ({"reward": "kimi", "options": {"wieght": 1}}, "options: wieght not an option of reward 'kimi'"),
    ({"reward": "cosine"}, "option max_len defaults to a share of the generation cap: pass max_completion_length"),
    ({"reward": "laser_d"}, "options.bucket_targets must give"),
    ({"num_generations": 1}, "num_generations must be an integer >= 2"),
    ({"eos_token_ids": None}, "eos_token_ids: needed"),
    ({"eos_token_ids": []}, "eos_token_ids must be a token id or a non-empty list"),
    ({"task": 3}, "task must be a task name"),
    ({"task": "gsm9k"}, "unknown task 'gsm9k'"),
    ({"max_completion_length": 0, "reward": "dler"}, "max_completion_length must be a positive token count"),
])
def test_arguments_are_checked_with_one_line_errors(kwargs, message):
    args = {"task": "chain", "eos_token_ids": EOS, **kwargs}
    with pytest.raises(Exception, match=message) as err:
        FrugalReward(**args)
    assert "\n" not in str(err.value)


# -------------------------------------------------------------------------------------------------------------------
# Real GRPOTrainer runs on the shipped tally base (CPU): the rewards TRL received are the registry's on the same
# completions, graded here with our grader.
# -------------------------------------------------------------------------------------------------------------------


def _check_calls(calls):
    """Each call (the whole batch): rewards == the registry's; groups are consecutive problem ids."""
    import grpo_run
    from transformers import AutoTokenizer

    from frugalthink.tasks.base import Problem
    from frugalthink.tasks.prompts import decode_completion, opens_thinking

    tok = AutoTokenizer.from_pretrained(grpo_run.base_dir())
    task, eos = get_task("tally"), {tok.eos_token_id}
    options = {"efficiency": {}, "laser": {"target": grpo_run.CAP // 4, "bonus": 0.5}}
    seen = set()
    for call in calls:
        ids, pids = call["completion_ids"], call["problem_id"]
        k = grpo_run.K
        assert all(len(set(pids[i : i + k])) == 1 for i in range(0, len(pids), k))  # TRL's layout
        truncated = [x[-1] not in eos for x in ids]
        grades = task.grade([decode_completion(tok, x, eos) for x in ids],
                            [Problem(id=p, question="", answer=a) for p, a in zip(pids, call["answer"])], truncated,
                            thinking_open=[opens_thinking(p) for p in call["prompts"]])
        correct = [g.correct for g in grades]
        name = call["name"].removeprefix("frugal_")
        batch = RewardBatch(correct, [len(x) for x in ids], pids, [0] * len(ids),
                            [g.reason not in rl.UNFORMED for g in grades], [False] * len(ids), grpo_run.ALPHA)
        want = REWARDS[name].compute(batch, options[name])
        assert call["rewards"] == pytest.approx(want, abs=1e-6), call["name"]
        seen |= {("correct", c) for c in correct} | {("truncated", t) for t in truncated}
    assert {c["name"] for c in calls} == {"frugal_efficiency", "frugal_laser"}
    assert {("correct", True), ("correct", False)} <= seen  # the run graded both ways


def test_grpo_trainer_one_process(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    import grpo_run

    calls = grpo_run.run(tmp_path, per_device=8)
    assert len(calls) == 4  # 2 steps x 2 reward functions
    _check_calls(calls)


def test_grpo_trainer_two_processes_groups_across_them(tmp_path, monkeypatch):
    """torchrun, 2 CPU processes (gloo), 6 samples each with num_generations 4: the middle group of every batch
    sits on both. Each process's rewards, put back together, are the registry's on the gathered batch."""
    monkeypatch.syspath_prepend(str(HERE))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), str(HERE / "grpo_run.py"),
                          str(tmp_path), "6"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"calls-rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    gathered = []
    for a, b in zip(*ranks, strict=True):
        assert a["name"] == b["name"] and len(a["rewards"]) == len(b["rewards"]) == 6
        assert a["problem_id"][-1] == b["problem_id"][0]  # a group on both processes
        gathered.append({key: a[key] + b[key] if isinstance(a[key], list) else a[key] for key in a})
    _check_calls(gathered)
