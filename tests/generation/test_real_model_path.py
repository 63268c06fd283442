"""The path a user takes with R1-Distill-Qwen, minus the weights: tiny random Qwen2 and Llama models with a
`<think>` chat template, real GSM8K prompts from ../shared/data (or the shipped test split), math-verify reward."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_TRAIN = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
SHIPPED_TEST = ROOT / "src" / "frugalthink" / "data" / "gsm8k" / "test.jsonl"
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


def build_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|eos|>", "<|unk|>", "<|user|>", "<|assistant|>", "<think>", "</think>"]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|pad|>",
                                   unk_token="<|unk|>", chat_template=CHAT_TEMPLATE)
    return fast


def build(kind, path, texts):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer(texts)
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = (Qwen2ForCausalLM(Qwen2Config(**common)) if kind == "qwen2" else LlamaForCausalLM(LlamaConfig(**common)))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)


@pytest.mark.parametrize("kind,reward", [("qwen2", "efficiency"), ("llama", "l1_max")])
def test_train_and_eval_on_real_math_prompts(kind, reward, tmp_path):
    from transformers import AutoTokenizer

    from frugalthink.util.jsonl import iter_jsonl

    data = SHARED_TRAIN if SHARED_TRAIN.exists() else SHIPPED_TEST
    rows = [r for _, r in iter_jsonl(data)][:64]
    build(kind, tmp_path / "m", [r["question"] + " " + r["answer"] for r in rows])
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    rendered = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                       add_generation_prompt=True)
    assert rendered.endswith("<|assistant|><think>\n")
    assert tok.decode(tok("x = 7, so \\boxed{7}")["input_ids"]) == "x = 7, so \\boxed{7}"

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {tmp_path / 'm'}\ntask: 'jsonl:{data}'\n"
        "task_options: {problem_field: question, answer_field: answer}\n"
        "num_prompts: 16\nalpha: 0.2\nprompts_per_rollout: 4\nrollouts: 2\nlearning_rate: 1.0e-4\n"
        f"max_completion_length: 12\nsave_every: 10\nthreads: 1\nreward: {reward}\n")
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "frugalthink.cli", "train", "--recipe", str(recipe), "--out", str(out)],
                         capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[0]["truncated_frac"] > 0  # 12 new tokens: random weights rarely stop, and truncated means wrong
    res = subprocess.run([sys.executable, "-m", "frugalthink.cli", "eval", "--model", str(out), "--task", "gsm8k",
                          "--limit", "4", "--max-new-tokens", "8", "--latency-requests", "2", "--out",
                          str(tmp_path / "eval")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    records = [json.loads(x) for x in (tmp_path / "eval" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["tokens"] <= 8 for r in records)
    if reward == "l1_max":  # the L1 model is asked with a budget in its prompt; the cutoff baseline on a real model
        res = subprocess.run([sys.executable, "-m", "frugalthink.cli", "eval", "--model", str(out), "--task", "gsm8k",
                              "--limit", "4", "--max-new-tokens", "64", "--latency-requests", "1", "--length-target",
                              "500", "--budget", "48", "--out", str(tmp_path / "eval_l1")],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        records = [json.loads(x) for x in (tmp_path / "eval_l1" / "records.jsonl").read_text().splitlines()]
        assert all(r["tokens"] <= 48 for r in records)
        assert any("The final answer is \\boxed{" in r["completion"] for r in records)  # forced at the budget


def test_the_gpu_check_script_runs_its_whole_path_on_cpu(tmp_path):
    """dev/gpu_check.py is what a GPU session runs (bf16 on CUDA); here the same path in fp32, so that a session
    with a GPU spends its minutes on the GPU and not on fixing the script."""
    res = subprocess.run([sys.executable, str(ROOT / "dev" / "gpu_check.py"), "--out", str(tmp_path / "g"),
                          "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "g" / "gpu_check.json").read_text())
    assert report["update_rule"] == "official" and report["dtype"] == "fp32"
    assert [s["step"] for s in report["steps"]] == [1, 2] and report["steps"][0]["loss"] != 0
    assert report["eval"]["accuracy"] is not None and report["latency_p50_ms"] > 0
