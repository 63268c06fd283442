"""`frugalthink merge`: a dial between two models of one architecture, by their weights, without training.

``merged = (1 - t) * base + t * other`` for every floating-point tensor of the two state dicts (integer buffers,
if any, are taken from ``base``). With ``base`` the starting model and ``other`` the most frugal member of a family,
``t`` from 0 to 1 gives models between them, the baseline a one-model-every-tier method is set against (docs/family.md).
Both models must have the same parameter names and shapes; the tokenizer and config come from ``base``.
"""

from __future__ import annotations

import json
from pathlib import Path

from frugalthink.generation.model_files import load_causal_lm, load_tokenizer
from frugalthink.util.errors import UserError

MARKER = "frugalthink_merge.json"


def interpolate(base_state: dict, other_state: dict, t: float) -> dict:
    """``(1 - t) * base + t * other`` per tensor; the keys and shapes must agree (the error names the first that
    does not). Integer tensors are copied from ``base``.

    >>> import torch
    >>> interpolate({"w": torch.tensor([0.0, 2.0])}, {"w": torch.tensor([1.0, 4.0])}, 0.25)["w"].tolist()
    [0.25, 2.5]
    """
    missing = sorted(set(base_state) ^ set(other_state))
    if missing:
        raise UserError(f"the two models differ in their weights: {missing[0]} is in one only ({len(missing)} names "
                        "differ); merge needs one architecture")
    out = {}
    for name, a in base_state.items():
        b = other_state[name]
        if a.shape != b.shape:
            raise UserError(f"the two models differ in {name}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        out[name] = ((1 - t) * a.float() + t * b.float()).to(a.dtype) if a.is_floating_point() else a.clone()
    return out


def merge(base: str | Path, other: str | Path, t: float, out: str | Path) -> Path:
    """Write the model at ``t`` between ``base`` (t = 0) and ``other`` (t = 1) to ``out``, a new or empty folder,
    with ``frugalthink_merge.json`` saying how it was made."""
    if not 0.0 <= t <= 1.0:
        raise UserError(f"--t must be in [0, 1] (0: the base, 1: the other model), got {t}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; nothing was written")
    lm = load_causal_lm(base)
    lm.load_state_dict(interpolate(lm.state_dict(), load_causal_lm(other).state_dict(), t))
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(out)
    load_tokenizer(base).save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"base": str(base), "other": str(other), "t": t}, indent=2) + "\n")
    return out


def run(args) -> int:
    path = merge(args.base, args.other, args.t, args.out)
    print(f"merged {args.base} (1 - t) and {args.other} (t = {args.t:g}) -> {path}")
    return 0
