"""Tokenizers that behave like real reasoning models' ones, built locally (no hub): R1-Distill-Qwen's from its real
``tokenizer_config.json`` (../shared/fixtures) and a Qwen2.5-style ``<|im_start|>`` one that opens thinking."""

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
R1_CONFIG = ROOT.parent / "shared" / "fixtures" / "r1-distill-qwen" / "tokenizer_config.json"
R1_BOS, R1_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
CORPUS = ["Please reason step by step, and put your final answer within \\boxed{}. Question: What is 1+2? "
          "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."] * 20
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


def _bpe(special, added):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=500, special_tokens=special,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens(added)
    return tok


def r1_tokenizer_dir(path: Path) -> Path:
    """R1-Distill's flags and chat template with a small BPE: ``add_bos_token`` true, a post-processor that adds
    BOS (as the real ``tokenizer.json`` does), and a template that writes ``{{bos_token}}`` itself."""
    from tokenizers import processors

    tok = _bpe([R1_BOS, R1_EOS, "<｜User｜>", "<｜Assistant｜>"], ["<think>", "</think>"])
    bos = tok.token_to_id(R1_BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{R1_BOS} $A", pair=f"{R1_BOS} $A {R1_BOS} $B",
                                                       special_tokens=[(R1_BOS, bos)])
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    config = json.loads(R1_CONFIG.read_text())
    config["tokenizer_class"] = "TokenizersBackend"  # the real class name warns with a small ByteLevel vocabulary
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def qwen_tokenizer_dir(path: Path) -> Path:
    """A Qwen2.5-style tokenizer: no BOS at all, ``<|im_end|>`` as EOS, a template that opens ``<think>``."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], ["<think>", "</think>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=QWEN_TEMPLATE)
    fast.save_pretrained(path)
    return path


def save_tiny_qwen2(tok_dir: Path, out: Path) -> Path:
    """A random 1-layer Qwen2 over the tokenizer in ``tok_dir``, saved with it into ``out``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    shutil.copytree(tok_dir, out, dirs_exist_ok=True)
    return out
