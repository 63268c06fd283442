"""Tiny model family: save/load round trip of model and tokenizer with no network; generation accounting."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from frugalthink.generation.backends import HFGenerator, _split_at_eos
from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer
from frugalthink.tasks.chain import minimal_completion, prompt_of


def test_save_load_round_trip(tmp_path):
    tok = build_tokenizer()
    model = build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    text = prompt_of("3581") + minimal_completion("3581")
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, model2(ids).logits, atol=1e-6)
    assert model2.config.model_type == "llama"


def test_split_at_eos():
    assert _split_at_eos([5, 6, 1, 0, 0], {1}, 0) == ([5, 6, 1], False)
    assert _split_at_eos([5, 6, 7], {1}, 0) == ([5, 6, 7], True)


def test_hf_generator_seeded_and_counts_tokens(tmp_path):
    tok = build_tokenizer()
    model = build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    gen = HFGenerator(str(tmp_path), device="cpu")
    prompts = [prompt_of("358"), prompt_of("12345")]
    a = gen.generate(prompts, max_new_tokens=12, temperature=1.0, seed=7)
    b = gen.generate(prompts, max_new_tokens=12, temperature=1.0, seed=7)
    assert a == b
    for g in a:
        assert 1 <= g.tokens <= 12
        text_tokens = len(tok(g.text, add_special_tokens=False)["input_ids"])
        # A finished completion counts its EOS (not in the text); a truncated one used the whole budget.
        assert text_tokens == (g.tokens if g.truncated else g.tokens - 1)
        assert not g.truncated or g.tokens == 12
        assert "</s>" not in g.text
