"""One prompt path: the same ids for the same problem in training, HF evaluation and vLLM evaluation, exactly one
BOS, the official R1 training prompt from the R1 recipes, and one decoding for the reward and for evaluation."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from fixture_tokenizers import R1_BOS, qwen_tokenizer_dir, r1_tokenizer_dir, save_tiny_qwen2

from frugalthink.generation.backends import HFGenerator, VLLMGenerator
from frugalthink.rl.reward_fn import LengthReward
from frugalthink.rl.train import load_recipe
from frugalthink.rl.trainer import FrugalRLOOTrainer
from frugalthink.tasks import get_task
from frugalthink.tasks.base import PAPER_INSTRUCTION, Problem
from frugalthink.tasks.prompts import build_prompt, decode_completion, encode_prompt, opens_thinking

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = Problem("p1", "Natalia sold 48 clips in April and half as many in May. How many in all?", "72")


class FakeLLM:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def get_tokenizer(self):
        return self.tokenizer


@pytest.fixture(scope="module", params=["r1", "qwen"])
def model_dir(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    build = r1_tokenizer_dir if request.param == "r1" else qwen_tokenizer_dir
    return request.param, save_tiny_qwen2(build(root / "tok"), root / "model")


def _ids_everywhere(path, task):
    hf = HFGenerator(str(path), threads=1)
    prompt = build_prompt(hf.tokenizer, task, PROBLEM)
    train_ids, _, _ = FrugalRLOOTrainer._tokenize_prompts(SimpleNamespace(processing_class=hf.tokenizer), [prompt])
    enc = hf.encode([prompt, "short"])  # batched with a shorter prompt: left padding must not change the ids
    hf_ids = [t for t, m in zip(enc["input_ids"][0].tolist(), enc["attention_mask"][0].tolist(), strict=True) if m]
    vllm_ids = VLLMGenerator("unused", llm=FakeLLM(hf.tokenizer)).requests([prompt])[0]["prompt_token_ids"]
    return hf, prompt, train_ids[0], hf_ids, vllm_ids


def test_same_ids_in_training_hf_and_vllm_evaluation(model_dir):
    kind, path = model_dir
    hf, prompt, train_ids, hf_ids, vllm_ids = _ids_everywhere(path, get_task("gsm8k"))
    assert train_ids == hf_ids == vllm_ids
    tok = hf.tokenizer
    if kind == "r1":
        bos = tok.convert_tokens_to_ids(R1_BOS)
        assert tok(prompt)["input_ids"][:2] == [bos, bos]  # what tokenizing the rendered text naively gives
        assert train_ids.count(bos) == 1 and train_ids[0] == bos
        assert not opens_thinking(prompt)
    else:
        assert tok.bos_token is None and prompt.endswith("<think>\n") and opens_thinking(prompt)
    assert tok.decode(train_ids) == prompt


def test_a_template_without_bos_gets_the_tokenizers_bos_once(tmp_path):
    path = save_tiny_qwen2(r1_tokenizer_dir(tmp_path / "tok"), tmp_path / "m")
    hf = HFGenerator(str(path), threads=1)
    bos = hf.tokenizer.convert_tokens_to_ids(R1_BOS)
    raw = encode_prompt(hf.tokenizer, "What is 1+2?")  # no template wrote the BOS: the tokenizer's own is added
    assert raw[0] == bos and raw.count(bos) == 1


@pytest.mark.parametrize("recipe", ["r1-distill-qwen-1.5b", "r1-distill-qwen-7b"])
def test_r1_recipes_give_the_official_training_prompt(recipe, tmp_path):
    rec = load_recipe(str(ROOT / "recipes" / recipe / "rl.yaml"))
    task = get_task(rec.task, **rec.task_options)  # builds without the hub; only load() needs it
    path = save_tiny_qwen2(r1_tokenizer_dir(tmp_path / "tok"), tmp_path / "m")
    hf = HFGenerator(str(path), threads=1)
    official = f"{R1_BOS}<｜User｜>{PAPER_INSTRUCTION} Question: {PROBLEM.question}<｜Assistant｜>"
    want = hf.tokenizer(official, add_special_tokens=False)["input_ids"]
    got = encode_prompt(hf.tokenizer, build_prompt(hf.tokenizer, task, PROBLEM))
    assert got == want
    # Evaluation with the recipe's eval message asks the same way.
    eval_task = get_task("math500", message=rec.eval["message"])
    assert build_prompt(hf.tokenizer, eval_task, PROBLEM) == official


def test_reward_and_evaluation_decode_the_same_text(model_dir):
    kind, path = model_dir
    hf = HFGenerator(str(path), threads=1)
    tok = hf.tokenizer
    eos = tok.eos_token_id
    text = "1+1=2, 48/2=24\n</think>\n\n**Final Answer**\n\\[\n\\boxed{72}\n\\]"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [eos]
    vllm = VLLMGenerator("unused", llm=FakeLLM(tok)).completion(ids, "stop")
    assert vllm.text == decode_completion(tok, ids, hf.eos_ids) == text and not vllm.truncated
    seen = {}

    class Spy:
        number_fallback = False

        def grade(self, texts, problems, truncated, thinking_open=None):
            seen.update(texts=texts, thinking_open=thinking_open)
            return get_task("gsm8k").grade(texts, problems, truncated, thinking_open)

    prompt = build_prompt(tok, get_task("gsm8k"), PROBLEM)
    reward = LengthReward(Spy(), 0.2, {eos}, tokenizer=tok, num_generations=2)
    # TRL's own decoding (skip_special_tokens=True) would differ for R1, whose EOS is a special token: ignored.
    rewards = reward(prompts=[prompt] * 2, completions=["ignored"] * 2, completion_ids=[ids, ids],
                     answer=["72", "72"], problem_id=["p1", "p1"])
    assert seen["texts"] == [vllm.text] * 2
    assert seen["thinking_open"] == [kind == "qwen"] * 2
    assert rewards[0] > 0


def test_vllm_request_seeds_never_repeat_across_consecutive_batches():
    from frugalthink.generation.backends import request_seeds

    seeds = [s for b in range(200) for s in request_seeds(1_000_003 * 0 + b, 64)]
    assert len(set(seeds)) == len(seeds)
    assert request_seeds(7, 4) == request_seeds(7, 4)


def test_a_model_without_a_chat_template_is_named_once_per_process(tmp_path, monkeypatch, capsys):
    from frugalthink.generation.model_files import load_tokenizer
    from frugalthink.organisms.tiny import build_tokenizer
    from frugalthink.tasks import prompts

    monkeypatch.setattr(prompts, "_RAW_NOTED", [])
    build_tokenizer().save_pretrained(tmp_path / "tok")
    tok = load_tokenizer(tmp_path / "tok")  # the tiny models' tokenizer: no chat template
    assert not getattr(tok, "chat_template", None)
    build_prompt(tok, get_task("chain"), Problem("c", "123", "6"))  # the tiny tasks never ask for a template
    assert capsys.readouterr().err == ""
    gsm8k = get_task("gsm8k")
    assert [build_prompt(tok, gsm8k, PROBLEM) for _ in range(3)] == [gsm8k.user_message(PROBLEM)] * 3
    assert capsys.readouterr().err.splitlines() == [
        f"note: {tmp_path / 'tok'} has no chat template; prompts are the raw message"]  # once, not per prompt
