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
- the attention mask as a boolean 4D view of one buffer (True = attend), handed to the model as is;
- compaction: once half of the rows have ended, the ended rows leave the batch (cache, mask, positions), so that
  long stragglers do not drag dead rows through every step.

The semantics are those of ``generate`` with ``do_sample=T > 0, top_k=0, top_p=1``: left padding, position ids
counted over real tokens, float32 logits of the last position, sampling by ``torch.multinomial`` on the global
generator. Greedy decoding gives the tokens of ``generate`` (tested); sampled decoding draws from the same
distribution, and until a row leaves the batch, from the same random stream (tested).

Measured alternatives that did not pay on a CPU (docs/LOG.md): the library's static cache (attends to its whole
capacity), ``torch.compile`` of the decode step (1.25x at batch 64 after an 18 s compile per process, more than a
demo run's whole generation time), and continuous batching (refilling ended rows keeps every row's attention span
at the longest row's, and decoding is bound by reading the KV cache at large batches).

Only models whose layers all use full attention are supported (no sliding windows, no linear-attention layers);
`check_supported` says so in one line.
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


def check_supported(model) -> None:
    """Raise a one-line UserError unless every layer of ``model`` uses full attention."""
    from frugalthink.errors import UserError

    config = model.config.get_text_config(decoder=True)
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"} or getattr(config, "use_sliding_window", False):
        raise UserError(f"the fast generation engine supports full-attention models only; {config.model_type} has "
                        f"layers {sorted(kinds)}: use --backend hf (recipe: generation_engine: hf)")


FIRST_CAPACITY = 256  # generated positions the cache holds before its first doubling


@torch.inference_mode()
def sample(model, prompts: list[list[int]], max_new_tokens: int, temperature: float, eos_ids, pad_id: int,
           compact: bool = True, check_every: int = 4) -> list[list[int]]:
    """Completion token ids for each prompt (token id lists), each up to and including its first EOS, or
    ``max_new_tokens`` ids when no EOS came. ``temperature == 0`` is greedy. The caller seeds the global generator
    (``torch.manual_seed``) as for ``generate``. Ended rows are noticed every ``check_every`` steps."""
    device = next(model.parameters()).device
    batch, width = len(prompts), max(len(p) for p in prompts)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], device=device)
    capacity = width + min(max_new_tokens, FIRST_CAPACITY)
    # attend[b, 0, 0, j]: row b may attend to cache position j (a real prompt token or a generated one)
    attend = torch.zeros(batch, 1, 1, capacity, dtype=torch.bool, device=device)
    attend[:, 0, 0, :width] = torch.arange(width, device=device) >= (width - lengths)[:, None]
    prefill_mask = attend[:, :, :, :width] & torch.ones(width, width, dtype=torch.bool, device=device).tril()
    # a pad query attends to nothing; let it see itself so that its (unused) output is not NaN
    prefill_mask |= torch.eye(width, dtype=torch.bool, device=device)
    positions = (attend[:, 0, 0, :width].long().cumsum(-1) - 1).clamp(min=0)
    cache = GrowingCache(model.config.get_text_config(decoder=True).num_hidden_layers, capacity)
    eos_set = {int(e) for e in eos_ids}
    eos = torch.tensor(sorted(eos_set), device=device)

    logits = model(input_ids=ids, attention_mask=prefill_mask, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1].float()
    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    live = torch.arange(batch, device=device)  # the prompt of each row still in the batch
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    steps = 0
    for t in range(max_new_tokens):
        if temperature > 0:
            nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1).squeeze(1)
        else:
            nxt = logits.argmax(dim=-1)
        nxt = nxt.masked_fill(finished, pad_id)
        out[live, t] = nxt
        finished = finished | torch.isin(nxt, eos)
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
                attend = attend.index_select(0, keep)
                cache.keep_rows(keep)
        if width + t >= attend.shape[-1]:  # the cache doubles inside update(); the mask follows
            attend = torch.cat([attend, torch.zeros_like(attend)], dim=-1)
        attend[:, 0, 0, width + t] = True
        logits = model(input_ids=nxt[:, None], attention_mask=attend[:, :, :, : width + t + 1],
                       position_ids=(lengths + t)[:, None], past_key_values=cache, use_cache=True).logits[:, -1].float()
    result = []
    for row in out[:, :steps].tolist():
        cut = next((i + 1 for i, tok in enumerate(row) if tok in eos_set), None)
        result.append(row[:cut] if cut is not None else row)
    return result
