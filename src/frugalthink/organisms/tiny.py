"""The embedded tiny model family: a character-level tokenizer and a small Llama decoder, built offline.

Both are saved in Hugging Face format, so ``AutoTokenizer.from_pretrained(dir)`` and
``AutoModelForCausalLM.from_pretrained(dir)`` load them with no network. (A Llama config is used because with a
Qwen2 config ``AutoTokenizer`` in transformers 5 swaps in Qwen's own tokenizer class and breaks the custom vocab.)
"""

from __future__ import annotations

from dataclasses import dataclass

from frugalthink.tasks.chain import BOX_OPEN, FILLERS, THINK_CLOSE, THINK_OPEN

PAD, EOS = "<pad>", "</s>"
# Every character the chain task (prompts, traces, fillers) can emit, plus a little headroom.
_CHARS = sorted(set("0123456789+-=():,.?!;{} \n" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "".join(FILLERS)))


@dataclass(frozen=True)
class TinyModelConfig:
    hidden_size: int = 96
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 256
    max_positions: int = 512

    def validate(self) -> None:
        from frugalthink.util.errors import UserError

        for name in ("hidden_size", "layers", "heads", "intermediate_size", "max_positions"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name} must be a positive integer, got {getattr(self, name)}")
        if self.hidden_size % self.heads:
            raise UserError(f"model.hidden_size ({self.hidden_size}) must be divisible by model.heads ({self.heads})")


def build_tokenizer():
    """Character-level tokenizer; ``<think>``, ``</think>`` and ``\\boxed{`` are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, EOS]
    words = [THINK_OPEN, THINK_CLOSE, BOX_OPEN]
    vocab = {tok: i for i, tok in enumerate(specials + words + _CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    # Split into single characters; the multi-character words are added tokens matched before splitting.
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    tok.add_tokens(words)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, unk_token=PAD)
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def build_model(tokenizer, cfg: TinyModelConfig | None = None, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyModelConfig()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def count_tokens(tokenizer, completion: str) -> int:
    """Completion length in tokens as frugalthink counts it everywhere: the text's tokens plus the EOS."""
    return len(tokenizer(completion, add_special_tokens=False)["input_ids"]) + 1
