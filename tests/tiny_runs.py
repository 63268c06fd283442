"""Helpers shared by the training tests: a random tiny model on disk and the `train` command in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_tiny_model(path) -> None:
    """A random 1-layer tiny Llama with the embedded character tokenizer, saved in Hugging Face format."""
    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)).save_pretrained(path)
    tok.save_pretrained(path)


def run_train(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """`frugalthink train --recipe recipes/tiny/rl.yaml ARGS` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "frugalthink.cli", "train", "--recipe",
                           str(ROOT / "recipes" / "tiny" / "rl.yaml"), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
