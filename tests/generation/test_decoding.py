"""The fast generation engine against transformers' ``generate``: the same tokens where the random stream is the
same, the same distribution where it is not, and the same rollouts inside the RL trainer."""

import math

import pytest
import torch

from frugalthink.generation import decoding
from frugalthink.generation.backends import HFGenerator, make_generator
from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer
from frugalthink.tasks.chain import prompt_of
from frugalthink.tasks.prompts import encode_prompt
from frugalthink.util.errors import UserError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random tiny model whose completions end at varied lengths: a sharper output layer and an EOS embedding
    that the context sometimes points at."""
    path = tmp_path_factory.mktemp("m")
    tok = build_tokenizer()
    model = build_model(tok, TinyModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64), seed=3)
    with torch.no_grad():
        model.model.norm.weight.mul_(4)
        model.model.embed_tokens.weight[tok.eos_token_id] = 0.1 * torch.randn(32, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


PROMPTS = [prompt_of(str(1000 + 37 * i)[: 2 + i % 5]) for i in range(48)]  # prompts of different lengths


def _generate_ids(model, tok, rows, max_new, temperature, seed, eos):
    """transformers' generate on left-padded ids, cut after the first EOS."""
    pad = tok.pad_token_id
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    torch.manual_seed(seed)
    sample = temperature > 0
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=sample,
                             temperature=temperature if sample else None, top_k=0 if sample else None,
                             top_p=1.0 if sample else None, pad_token_id=pad, eos_token_id=sorted(eos))
    result = []
    for row in out[:, width:].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in eos), None)
        result.append(row[:cut] if cut else [t for t in row])
    return result


def _fast_ids(model, tok, rows, max_new, temperature, seed, eos, compact=True):
    torch.manual_seed(seed)
    return decoding.sample(model, rows, max_new, temperature, eos, tok.pad_token_id, compact=compact)


def _rows(gen):
    return [encode_prompt(gen.tokenizer, p) for p in PROMPTS]


def _wild_llama(tok):
    """Random weights of a large spread: greedy completions differ by prompt and end (EOS) at different steps."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, initializer_range=0.3,
                                        tie_word_embeddings=True)).eval()


@pytest.mark.parametrize("first_capacity", [256, 3])
def test_greedy_tokens_equal_generate_with_rows_leaving_the_batch(first_capacity, monkeypatch):
    """Rows end at different steps and leave the batch; with a first capacity of 3 the cache also doubles
    several times on the way."""
    monkeypatch.setattr(decoding, "FIRST_CAPACITY", first_capacity)
    tok = build_tokenizer()
    model = _wild_llama(tok)
    rows, eos = [encode_prompt(tok, p) for p in PROMPTS], {tok.eos_token_id}
    calls = []
    keep_rows = decoding.GrowingCache.keep_rows

    def spy(self, rows_kept):
        calls.append(len(rows_kept))
        keep_rows(self, rows_kept)

    decoding.GrowingCache.keep_rows = spy
    try:
        fast = _fast_ids(model, tok, rows, 40, 0.0, 0, eos)
    finally:
        decoding.GrowingCache.keep_rows = keep_rows
    assert calls, "no row left the batch: the test does not exercise compaction"
    assert fast == _generate_ids(model, tok, rows, 40, 0.0, 0, eos)
    ended = [r for r in fast if r[-1] in eos]
    assert len({len(r) for r in ended}) > 3 and len(ended) < len(fast)  # finished at different steps, some never


def test_sampled_tokens_equal_generate_without_compaction(model_dir):
    gen = HFGenerator(model_dir, device="cpu")
    rows, eos = _rows(gen), gen.eos_ids
    for temperature, seed in ((1.0, 5), (0.6, 11)):
        fast = _fast_ids(gen.model, gen.tokenizer, rows, 30, temperature, seed, eos, compact=False)
        assert fast == _generate_ids(gen.model, gen.tokenizer, rows, 30, temperature, seed, eos)
    assert len({len(r) for r in fast}) > 3  # rows end at different steps


def test_sampled_lengths_match_generate_in_distribution(model_dir):
    """With compaction the random stream differs; mean tokens and the truncated share must agree within noise
    (|z| < 4 over 8 x 48 samples per engine)."""
    fast, slow = make_generator("fast", model_dir, device="cpu"), make_generator("hf", model_dir, device="cpu")
    assert (fast.name, slow.name) == ("fast", "hf")
    a = [g for s in range(8) for g in fast.generate(PROMPTS, 40, 1.0, seed=100 + s)]
    b = [g for s in range(8) for g in slow.generate(PROMPTS, 40, 1.0, seed=200 + s)]
    for stat in (lambda g: g.tokens, lambda g: float(g.truncated)):
        xa, xb = [stat(g) for g in a], [stat(g) for g in b]
        ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
        va = sum((x - ma) ** 2 for x in xa) / (len(xa) - 1)
        vb = sum((x - mb) ** 2 for x in xb) / (len(xb) - 1)
        z = (ma - mb) / math.sqrt(va / len(xa) + vb / len(xb) + 1e-12)
        assert abs(z) < 4, (ma, mb, z)
    assert 0.05 < sum(g.truncated for g in a) / len(a) < 0.95  # both endings occur: the check has power


def test_records_count_tokens_as_everywhere(model_dir):
    gen = HFGenerator(model_dir, device="cpu")
    outs = gen.generate(PROMPTS[:16], 12, 1.0, seed=3)
    assert outs == gen.generate(PROMPTS[:16], 12, 1.0, seed=3)  # seeded
    for g in outs:
        text_tokens = len(gen.tokenizer(g.text, add_special_tokens=False)["input_ids"])
        assert text_tokens == (g.tokens if g.truncated else g.tokens - 1)
        assert not g.truncated or g.tokens == 12


def test_sliding_window_models_are_refused_in_one_line():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, use_sliding_window=True, sliding_window=8, max_window_layers=0)
    with pytest.raises(UserError, match="full-attention models only.*--backend hf"):
        decoding.check_supported(Qwen2ForCausalLM(cfg))
    decoding.check_supported(Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                          num_hidden_layers=2, num_attention_heads=2,
                                                          num_key_value_heads=1)))


def test_grouped_query_model_greedy_equals_generate():
    """A Qwen2-shaped model (grouped-query attention, biases on q/k/v): the loop uses the library's layers as
    they are."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    tok = type("Tok", (), {"pad_token_id": 0})()
    rows = [[5 + (i * 7 + j) % 50 for j in range(3 + i % 6)] for i in range(12)]
    eos = {1}
    assert _fast_ids(model, tok, rows, 20, 0.0, 0, eos) == _generate_ids(model, tok, rows, 20, 0.0, 0, eos)


def test_bench_script_compares_both_engines(model_dir, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, str(root / "dev" / "bench_generation.py"), "--model", model_dir,
                          "--batch-sizes", "1,4", "--max-new-tokens", "8", "--repeats", "1", "--latency-requests", "2",
                          "--threads", "1", "--json", str(tmp_path / "b.json")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads((tmp_path / "b.json").read_text())
    assert [(r["engine"], r["batch"]) for r in out["throughput"]] == [("hf", 1), ("fast", 1), ("hf", 4), ("fast", 4)]
    n = out["same_samples"]["problems"]
    assert out["same_samples"]["greedy_identical"] == f"{n}/{n}"
    assert {r["engine"] for r in out["latency"]} == {"hf", "fast"}


def _small_model(arch: str, window: int | None = None):
    """A random 2-layer model of ``arch`` with weights of a large spread (greedy completions differ by prompt)."""
    import transformers

    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, initializer_range=0.3, pad_token_id=0, bos_token_id=2, eos_token_id=1)
    if arch == "llama-eager":
        cfg = transformers.LlamaConfig(**common, attn_implementation="eager")
    else:
        name = {"mistral": "Mistral", "phi3": "Phi3", "starcoder2": "Starcoder2"}[arch]
        cfg = getattr(transformers, f"{name}Config")(**common, sliding_window=window)
    torch.manual_seed(1)
    return transformers.AutoModelForCausalLM.from_config(cfg).eval()


# prompts of 3..14 tokens: longer than a window of 4, so the window cuts into prompts and completions alike
SMALL_ROWS = [[5 + (i * 7 + j * 3) % 50 for j in range(3 + i % 12)] for i in range(12)]


@pytest.mark.parametrize("arch,window", [("llama-eager", None), ("mistral", 4), ("phi3", 5), ("starcoder2", 4),
                                         ("mistral", 4096)])
def test_greedy_equals_generate_with_eager_attention_and_sliding_windows(arch, window):
    """Eager attention adds the mask to the scores (so it must be 0 / -inf, not boolean); Mistral, Phi-3 and
    Starcoder2 read ``sliding_window`` without ``layer_types``. A window longer than every sequence changes nothing."""
    model = _small_model(arch, window)
    tok = type("Tok", (), {"pad_token_id": 0})()
    eos = {1}
    expected = _generate_ids(model, tok, SMALL_ROWS, 20, 0.0, 0, eos)
    assert _fast_ids(model, tok, SMALL_ROWS, 20, 0.0, 0, eos) == expected
    if window is not None and window < 20:  # the window matters: without it generate gives other tokens
        model.config.sliding_window = None
        assert _generate_ids(model, tok, SMALL_ROWS, 20, 0.0, 0, eos) != expected


def test_other_attention_implementations_are_refused_in_one_line():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2))
    decoding.check_supported(model)  # sdpa
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(UserError, match="llama runs flash_attention_2: use --backend hf"):
        decoding.check_supported(model)


def test_large_vocabulary_draw_follows_the_distribution():
    """Above MULTINOMIAL_MAX_VOCAB a token is drawn by inverse CDF: frequencies within 4 sigma of the probabilities,
    never a token of probability 0 (the first, the last, one in the middle)."""
    vocab = decoding.MULTINOMIAL_MAX_VOCAB + 1000
    probs = torch.full((vocab,), 0.1 / (vocab - 7))
    probs[[0, 2500, vocab - 1]] = 0.0
    probs[[1, 7, 3000, vocab - 2]] = torch.tensor([0.4, 0.25, 0.15, 0.1])
    n = 40_000
    torch.manual_seed(0)
    drawn = decoding.draw(probs.expand(n, vocab))
    counts = torch.bincount(drawn, minlength=vocab).double()
    assert counts[[0, 2500, vocab - 1]].sum() == 0
    for ids in ([1], [7], [3000], [vocab - 2], list(range(8, 2500))):  # single tokens and a long run of tiny ones
        p = float(probs[ids].sum())
        assert abs(float(counts[ids].sum()) / n - p) < 4 * math.sqrt(p * (1 - p) / n), ids


# --- top_p (nucleus) sampling -------------------------------------------------------------------------------------

def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    """Probabilities .5 .3 .15 .05 (shuffled over the ids): the nucleus is taken in falling probability until its
    mass is >= top_p, and always holds the most probable token."""
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    logits = probs.log()[None]
    kept = lambda top_p: set(torch.nonzero(~decoding.nucleus(logits, top_p)[0].isinf()).flatten().tolist())  # noqa: E731
    assert kept(1e-9) == kept(0.49) == {1}  # .5 alone reaches anything up to .5
    assert kept(0.51) == kept(0.79) == {1, 3}  # .5 + .3 = .8
    assert kept(0.81) == kept(0.94) == {1, 3, 0}  # + .15 = .95
    assert kept(0.96) == {0, 1, 2, 3}
    # the boundary, on four equal logits (probabilities exactly .25, cumulative .25 .5 .75 1): a nucleus whose mass
    # reaches top_p exactly stops there; which of the equal tokens are kept is torch.sort's order, as in transformers
    n_kept = lambda top_p: int((~decoding.nucleus(torch.zeros(1, 4), top_p).isinf()).sum())  # noqa: E731
    assert [n_kept(p) for p in (0.25, 0.26, 0.5, 0.51, 0.75, 1.0)] == [1, 2, 2, 3, 3, 4]
    kept_scores = decoding.nucleus(logits, 0.79)[0]
    assert torch.equal(kept_scores[[1, 3]], logits[0, [1, 3]])  # kept scores untouched


def test_nucleus_equals_transformers_top_p_warper():
    """The same filtered scores as transformers' TopPLogitsWarper (the ``hf`` backend's), on random rows."""
    from transformers.generation.logits_process import TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 500, generator=g) * 3
    for top_p in (0.05, 0.5, 0.9, 0.95, 0.999):
        assert torch.equal(decoding.nucleus(scores, top_p), TopPLogitsWarper(top_p)(None, scores)), top_p


@pytest.mark.parametrize("vocab", [50, decoding.MULTINOMIAL_MAX_VOCAB + 1000])
def test_top_p_never_draws_outside_the_nucleus(vocab):
    """Both draw paths (multinomial, inverse CDF): no token outside the nucleus; inside it, frequencies within 4 sigma
    of the renormalised probabilities (.5 / .8 and .3 / .8 at top_p .75)."""
    probs = torch.full((vocab,), 0.15 / (vocab - 3))  # .5 + .3 = .8 >= .75: the nucleus is {3, 17}
    probs[[3, 17, 40]] = torch.tensor([0.5, 0.3, 0.05])
    logits = probs.log()
    n = 20_000
    torch.manual_seed(1)
    drawn = decoding.draw(torch.softmax(decoding.nucleus(logits.expand(n, vocab), 0.75), dim=-1))
    counts = torch.bincount(drawn, minlength=vocab)
    assert int(counts.sum()) == n and int(counts[3] + counts[17]) == n  # the rest is never drawn
    for tok, p in ((3, 0.5 / 0.8), (17, 0.3 / 0.8)):
        assert abs(int(counts[tok]) / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def _generate_ids_top_p(model, tok, rows, max_new, temperature, top_p, seed, eos):
    """transformers' generate with nucleus sampling on left-padded ids, cut after the first EOS."""
    pad = tok.pad_token_id
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=True,
                             temperature=temperature, top_k=0, top_p=top_p, pad_token_id=pad, eos_token_id=sorted(eos))
    result = []
    for row in out[:, width:].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in eos), None)
        result.append(row[:cut] if cut else row)
    return result


def test_top_p_sampled_tokens_equal_generate(model_dir):
    """Under top_p the fast engine filters as generate does and draws from the same random stream: the same tokens
    as long as no row leaves the batch; and top_p changes the samples (the nucleus cuts real mass here)."""
    gen = HFGenerator(model_dir, device="cpu")
    rows, eos = _rows(gen), gen.eos_ids
    for temperature, top_p, seed in ((1.0, 0.7, 5), (0.6, 0.95, 11)):
        torch.manual_seed(seed)
        fast = decoding.sample(gen.model, rows, 30, temperature, eos, gen.tokenizer.pad_token_id, compact=False,
                               top_p=top_p)
        assert fast == _generate_ids_top_p(gen.model, gen.tokenizer, rows, 30, temperature, top_p, seed, eos)
    torch.manual_seed(5)
    plain = decoding.sample(gen.model, rows, 30, 1.0, eos, gen.tokenizer.pad_token_id, compact=False)
    torch.manual_seed(5)
    nucleus = decoding.sample(gen.model, rows, 30, 1.0, eos, gen.tokenizer.pad_token_id, compact=False, top_p=0.7)
    assert plain != nucleus


def test_top_p_reaches_both_engines_through_the_generator(model_dir):
    """HFGenerator hands top_p to the fast loop and to generate: each equals its engine called directly."""
    fast, slow = make_generator("fast", model_dir, device="cpu"), make_generator("hf", model_dir, device="cpu")
    rows, eos, pad = _rows(fast), fast.eos_ids, fast.tokenizer.pad_token_id
    torch.manual_seed(7)
    direct = decoding.sample(fast.model, rows, 20, 1.0, eos, pad, top_p=0.8)
    assert [g.tokens for g in fast.generate(PROMPTS, 20, 1.0, seed=7, top_p=0.8)] == [len(r) for r in direct]
    via = slow.generate(PROMPTS, 20, 1.0, seed=7, top_p=0.8)
    assert [g.tokens for g in via] == [len(r) for r in _generate_ids_top_p(slow.model, slow.tokenizer, rows, 20,
                                                                            1.0, 0.8, 7, eos)]


def test_top_p_one_runs_the_old_sampling_path(model_dir, monkeypatch):
    """top_p = 1 never calls the nucleus filter (the ops and the random stream of the loop before top_p existed), and
    an explicit 1.0 gives the records of a call without it."""
    gen = HFGenerator(model_dir, device="cpu")
    before = gen.generate(PROMPTS[:16], 12, 1.0, seed=3)

    def refuse(*a, **k):
        raise AssertionError("nucleus called at top_p 1")

    monkeypatch.setattr(decoding, "nucleus", refuse)
    assert gen.generate(PROMPTS[:16], 12, 1.0, seed=3, top_p=1.0) == before
    with pytest.raises(AssertionError, match="nucleus called"):
        gen.generate(PROMPTS[:2], 4, 1.0, seed=3, top_p=0.9)
    assert gen.generate(PROMPTS[:2], 4, 0.0, seed=3, top_p=0.9) == gen.generate(PROMPTS[:2], 4, 0.0, seed=3)  # greedy
    with pytest.raises(ValueError, match="top_p must lie in"):
        decoding.sample(gen.model, _rows(gen)[:1], 2, 1.0, gen.eos_ids, gen.tokenizer.pad_token_id, top_p=0.0)


def test_a_row_cap_stops_that_row_at_its_cap(model_dir):
    """Per-row caps (a budget tier's rollout, `frugalthink.rl.budgets`): greedy decoding gives each capped row the
    uncapped row's first ``cap`` ids, without an EOS when the row had not ended by then; rows without a cap as before."""
    gen = HFGenerator(model_dir, device="cpu")
    rows = _rows(gen)[:12]
    eos = {gen.tokenizer.eos_token_id}
    full = decoding.sample(gen.model, rows, 24, 0.0, eos, gen.tokenizer.pad_token_id)
    caps = [None if i % 3 == 0 else 2 + i % 5 for i in range(len(rows))]
    capped = decoding.sample(gen.model, rows, 24, 0.0, eos, gen.tokenizer.pad_token_id, caps=caps)
    for whole, cut, cap in zip(full, capped, caps, strict=True):
        assert cut == (whole if cap is None else whole[:cap])
    assert any(cap is not None and len(whole) > cap for whole, cap in zip(full, caps, strict=True))
    with pytest.raises(ValueError, match="3 caps for 12 prompts"):
        decoding.sample(gen.model, rows, 24, 0.0, eos, gen.tokenizer.pad_token_id, caps=[4, 4, 4])
