"""A lean sampling loop around a Hugging Face causal LM's own forward: the ``fast`` generation engine.

What ``model.generate`` does per decode step besides the forward -- logits processors, stopping criteria, a
dynamic KV cache re-concatenated every step, a 4D mask rebuilt from the 2D one -- is most of a step for small models
on a CPU (docs/evaluation.md, "Fast generation"). Here a step is: the forward on one new token per live row, the
next token drawn from ``softmax(logits / T)`` (or the argmax when ``T == 0``), EOS bookkeeping. The model's
attention, MLP and rotary code are the library's, unchanged; the loop owns only three things:

- `GrowingCache`: one key/value buffer per layer, written in place; each step attends to the filled prefix only (a
  view: no copy, no concatenation), unlike the library's static cache, which attends to its whole capacity every
  step. The buffer starts at prompt + 256 positions and doubles when full, so memory follows the completions'
  actual length, not ``max_new_tokens`` (32k for R1 recipes);
- the attention mask as a boolean 4D view of one buffer (True = attend), handed to the model as is (for eager
  attention, which adds the mask to the scores, as 0 / the dtype's minimum, the library's own eager mask); with a
  ``sliding_window`` (Mistral, Phi-3, Starcoder2) a query sees only its last ``sliding_window`` positions;
- compaction: once half of the rows have ended, the ended rows leave the batch (cache, mask, positions), so that
  long stragglers do not drag dead rows through every step.

The semantics are those of ``generate`` with ``do_sample=T > 0, top_k=0`` and its ``top_p`` (1 by default, no
nucleus; below 1 `nucleus` filters ``logits / T`` with the ops of transformers' ``TopPLogitsWarper``): left padding,
position ids counted over real tokens, float32 logits of the last position, sampling on the global generator. Greedy decoding
gives the tokens of ``generate`` (tested; the library's matmuls round differently for different row counts, so once
rows leave the batch this is measured, not guaranteed: 16 / 16 GSM8K completions identical on SmolLM2-135M). Sampled
decoding draws from the same distribution; for vocabularies up to `MULTINOMIAL_MAX_VOCAB` (the embedded tiny
models) by ``torch.multinomial`` as ``generate`` does, so from the same random stream until a row leaves the batch
(tested); above it by inverse CDF (`draw`), which is cheaper by one exponential per vocabulary entry and row.

Measured alternatives that did not pay on a CPU (dev/LOG.md, docs/evaluation.md): the library's static cache
(attends to its whole capacity), ``torch.compile`` of the decode step (tiny model: 1.25x at batch 64 after an 18 s
compile per process, more than a demo run's whole generation time; SmolLM2-135M: no gain at batch 16 after minutes
of compiling, 70% of its step being fp32 matmuls that compile leaves to the same library), eager attention instead
of sdpa (1.2x slower per step), and continuous batching (refilling ended rows keeps every row's attention span at
the longest row's, and decoding is bound by reading the KV cache at large batches).

Supported: sdpa or eager attention, and layers that all use full attention or, without ``layer_types``, one
``sliding_window``; hybrid models (per-layer ``layer_types``, Qwen2's ``use_sliding_window``) and other attention
implementations are refused by `check_supported` in one line.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class GrowingLayer(CacheLayerMixin):
    """Keys and values of one layer, ``(batch, heads, capacity, head_dim)``; `update` writes the new positions in
    place and returns views of the filled prefix."""

    is_sliding = False
    is_compileable = False

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, dk = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_zeros((b, h, self.capacity, dk))
        self.values = value_states.new_zeros((b, h, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self.grow(max(end, 2 * self.capacity))
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def grow(self, capacity: int) -> None:
        if self.is_initialized:
            for name in ("keys", "values"):
                old = getattr(self, name)
                new = old.new_zeros((*old.shape[:2], capacity, old.shape[-1]))
                new[:, :, : self.length] = old[:, :, : self.length]
                setattr(self, name, new)
        self.capacity = capacity

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def keep_rows(self, rows: torch.Tensor) -> None:
        if self.is_initialized:
            self.keys, self.values = self.keys.index_select(0, rows), self.values.index_select(0, rows)


class GrowingCache(Cache):
    def __init__(self, num_layers: int, capacity: int) -> None:
        super().__init__(layers=[GrowingLayer(capacity) for _ in range(num_layers)])

    def keep_rows(self, rows: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keep_rows(rows)


MASKED_ATTENTION = ("sdpa", "eager")  # the attention implementations `sample` builds a 4D mask for


def check_supported(model) -> None:
    """Raise a one-line UserError unless every layer of ``model`` uses the same attention (full, or one sliding
    window read from ``config.sliding_window`` as Mistral, Phi-3 and Starcoder2 do) through sdpa or eager."""
    from frugalthink.util.errors import UserError

    config = model.config.get_text_config(decoder=True)
    impl = model.config._attn_implementation
    if impl not in MASKED_ATTENTION:
        raise UserError(f"the fast generation engine hands a 4D mask to sdpa or eager attention; {config.model_type} "
                        f"runs {impl}: use --backend hf (recipe: generation_engine: hf)")
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"} or getattr(config, "use_sliding_window", False):
        raise UserError(f"the fast generation engine supports full-attention models only; {config.model_type} has "
                        f"layers {sorted(kinds)}: use --backend hf (recipe: generation_engine: hf)")


def attention_window(config) -> int | None:
    """Keys a query attends to, itself included, when the model reads ``sliding_window`` without ``layer_types``
    (Mistral, Phi-3, Starcoder2: the library's ``create_sliding_window_causal_mask``); None for full attention."""
    config = config.get_text_config(decoder=True)
    return None if getattr(config, "layer_types", None) else getattr(config, "sliding_window", None)


FIRST_CAPACITY = 256  # generated positions the cache holds before its first doubling
MULTINOMIAL_MAX_VOCAB = 4096  # up to this vocabulary size a token is drawn as generate draws it (see `draw`)


def nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """``scores`` ``(rows, vocab)`` (``logits / T``) with every token outside the nucleus set to -inf.

    The nucleus of a row is the smallest set of most probable tokens whose probability reaches ``top_p``: tokens are
    taken in order of falling probability until their cumulative probability is >= ``top_p`` (the token that makes it
    reach ``top_p`` is kept, the ones after it are not), and the most probable token is always kept. These are the
    ops of transformers' ``TopPLogitsWarper`` (``min_tokens_to_keep=1``), so both engines filter identically: sort
    ascending, drop a token when the cumulative probability up to it is <= ``1 - top_p``. Equal probabilities that
    straddle the boundary are ordered by ``torch.sort`` as there (which of them is kept is that sort's order).

    >>> nucleus(torch.tensor([[2.0, 1.0, 0.0, -1.0]]).log_softmax(-1), 0.9).isinf().tolist()   # p .64 .24 .09 .03
    [[False, False, False, True]]
    """
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= (1 - top_p)
    drop[..., -1:] = False
    return scores.masked_fill(drop.scatter(1, order, drop), -float("inf"))


def draw(probs: torch.Tensor) -> torch.Tensor:
    """One token id per row of ``probs`` ``(rows, vocab)``, each row a distribution; an entry of probability 0 (a
    token outside the nucleus, `nucleus`) is never drawn by either path.

    Up to `MULTINOMIAL_MAX_VOCAB` entries: ``torch.multinomial``, as ``generate`` does, so that the two engines draw
    the same tokens from the same seed (the embedded tiny models, the demo). Above it, inverse CDF sampling with one
    uniform per row, ``first i with cdf[i] > u * cdf[-1]`` over a float64 cumulative sum: the same distribution for
    a fraction of the cost, because ``multinomial`` draws one exponential per vocabulary entry and row (14-22 ms of a
    118 ms step at batch 16 x 49k entries on a CPU core, docs/results/generation-speed.md), but another random stream.
    """
    if probs.shape[-1] <= MULTINOMIAL_MAX_VOCAB:
        return torch.multinomial(probs, 1).squeeze(1)
    cdf = probs.cumsum(-1, dtype=torch.float64)
    u = torch.rand(len(probs), 1, dtype=torch.float64, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)


@torch.inference_mode()
def sample(model, prompts: list[list[int]], max_new_tokens: int, temperature: float, eos_ids, pad_id: int,
           compact: bool = True, check_every: int = 4, top_p: float = 1.0,
           caps: list[int | None] | None = None) -> list[list[int]]:
    """Completion token ids for each prompt (token id lists), each up to and including its first EOS, or
    ``max_new_tokens`` ids when no EOS came. ``caps``: a cap of its own per row (None: ``max_new_tokens``), a
    budget tier's rollout stopped at its budget (`frugalthink.rl.budgets`): a row that reaches its cap ends there
    without an EOS (a truncated completion), its tokens drawn from the same distribution as without the cap.
    ``temperature == 0`` is greedy. ``top_p < 1`` samples from the nucleus
    (`nucleus`); at 1 the sampling ops and the random stream are those of a loop without it. The caller seeds the
    global generator (``torch.manual_seed``) as for ``generate``. Ended rows are noticed every ``check_every``
    steps."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    device = next(model.parameters()).device
    batch, width = len(prompts), max(len(p) for p in prompts)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], device=device)
    capacity = width + min(max_new_tokens, FIRST_CAPACITY)
    window = attention_window(model.config)
    if window is not None and window >= width + max_new_tokens:
        window = None  # longer than any sequence here: full attention
    eager, zero = model.config._attn_implementation == "eager", torch.zeros((), dtype=model.dtype, device=device)

    def as_mask(m: torch.Tensor) -> torch.Tensor:  # eager attention adds the mask to the scores: 0 / the minimum
        return torch.where(m, zero, torch.finfo(model.dtype).min) if eager else m  # (the library's eager_mask)

    # attend[b, 0, 0, j]: row b may attend to cache position j (a real prompt token or a generated one)
    attend = torch.zeros(batch, 1, 1, capacity, dtype=torch.bool, device=device)
    attend[:, 0, 0, :width] = torch.arange(width, device=device) >= (width - lengths)[:, None]
    square = torch.ones(width, width, dtype=torch.bool, device=device)
    causal = square.tril() if window is None else square.tril() & ~square.tril(-window)
    prefill_mask = attend[:, :, :, :width] & causal
    # a pad query attends to nothing; let it see itself so that its (unused) output is not NaN
    prefill_mask |= torch.eye(width, dtype=torch.bool, device=device)
    positions = (attend[:, 0, 0, :width].long().cumsum(-1) - 1).clamp(min=0)
    cache = GrowingCache(model.config.get_text_config(decoder=True).num_hidden_layers, capacity)
    eos_set = {int(e) for e in eos_ids}
    eos = torch.tensor(sorted(eos_set), device=device)

    logits = model(input_ids=ids, attention_mask=as_mask(prefill_mask), position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1].float()
    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    live = torch.arange(batch, device=device)  # the prompt of each row still in the batch
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    row_caps = [max_new_tokens if c is None else max(1, min(int(c), max_new_tokens)) for c in (caps or [None] * batch)]
    if len(row_caps) != batch:
        raise ValueError(f"{len(row_caps)} caps for {batch} prompts")
    cap = torch.tensor(row_caps, device=device) if caps is not None else None
    steps = 0
    for t in range(max_new_tokens):
        if temperature > 0 and top_p < 1.0:
            nxt = draw(torch.softmax(nucleus(logits / temperature, top_p), dim=-1))
        else:
            nxt = draw(torch.softmax(logits / temperature, dim=-1)) if temperature > 0 else logits.argmax(dim=-1)
        nxt = nxt.masked_fill(finished, pad_id)
        out[live, t] = nxt
        finished = finished | torch.isin(nxt, eos)
        if cap is not None:
            finished = finished | (cap <= t + 1)
        steps = t + 1
        if steps == max_new_tokens:
            break
        if steps % check_every == 0:
            n_done = int(finished.sum())
            if n_done == len(live):
                break
            if compact and 2 * n_done >= len(live):
                keep = (~finished).nonzero().squeeze(1)
                live, nxt, lengths, finished = live[keep], nxt[keep], lengths[keep], finished[keep]
                cap = None if cap is None else cap[keep]
                attend = attend.index_select(0, keep)
                cache.keep_rows(keep)
        query = width + t  # the new token's cache position
        if query >= attend.shape[-1]:  # the cache doubles inside update(); the mask follows
            attend = torch.cat([attend, torch.zeros_like(attend)], dim=-1)
        attend[:, 0, 0, query] = True
        if window is not None and query - window >= 0:  # the query sees positions query - window + 1 .. query
            attend[:, 0, 0, : query - window + 1] = False
        logits = model(input_ids=nxt[:, None], attention_mask=as_mask(attend[:, :, :, : query + 1]),
                       position_ids=(lengths + t)[:, None], past_key_values=cache, use_cache=True).logits[:, -1].float()
    result = []
    for row, row_cap in zip(out[:, :steps].tolist(), row_caps, strict=True):
        cut = next((i + 1 for i, tok in enumerate(row) if tok in eos_set), None)
        result.append(row[:cut] if cut is not None else row[:row_cap])
    return result
