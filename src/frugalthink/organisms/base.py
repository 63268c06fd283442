"""`frugalthink base`: build the embedded tiny base reasoner by SFT on verbose chain traces."""

from __future__ import annotations

import json
import time
from pathlib import Path

from frugalthink.config import apply_overrides, from_dict, load_yaml, write_run_metadata
from frugalthink.organisms.sft import BaseRecipe, train_base
from frugalthink.organisms.tiny import build_model, build_tokenizer
from frugalthink.util.outdir import claim
from frugalthink.util.progress import progress_bar

METADATA = "frugalthink_base.json"


def load_base_recipe(path: str | None, overrides: list[str], answer_only: bool = False) -> BaseRecipe:
    data = load_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    if answer_only:
        data["answer_only"] = True
    return from_dict(BaseRecipe, data, where=str(path or "base recipe"))


def build_base(out: str | Path, recipe: BaseRecipe) -> dict:
    """Train and save the base reasoner into ``out``; returns the training summary. Skips a finished build."""
    out = Path(out)
    done = out / "base_summary.json"
    if done.exists():
        _check_same_base(out, recipe)
        return json.loads(done.read_text())
    claim(out, METADATA)
    # An interrupted build of ours starts over (short and deterministic): save_pretrained overwrites our weights and
    # tokenizer files; our own log is emptied. Nothing else in the folder is touched.
    (out / "train_log.jsonl").write_text("")
    write_run_metadata(out, recipe, name=METADATA)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, recipe.model, seed=recipe.seed)
    n_params = sum(p.numel() for p in model.parameters())
    with progress_bar(f"SFT base ({n_params / 1e6:.2f}M params)", total=recipe.steps) as bar:
        summary = train_base(model, tokenizer, recipe, out / "train_log.jsonl",
                             progress=lambda step, loss: bar(step, f"loss {loss:.3f}"))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary.update(params=n_params, answer_only=recipe.answer_only, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _check_same_base(out: Path, recipe: BaseRecipe) -> None:
    """A finished build is reused only for the same task, task settings and model (a demo folder of one task must
    not serve as the base of another)."""
    from frugalthink.config import to_dict
    from frugalthink.util.errors import UserError

    try:
        old = json.loads((out / METADATA).read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError):
        return
    new = json.loads(json.dumps(to_dict(recipe)))  # as it was written: tuples become lists
    old.setdefault("task", "chain")
    for key in ("task", recipe.task, "model"):
        if key in old and old[key] != new[key]:
            raise UserError(f"{out}: holds a base built with {key}={old[key]!r}, not {new[key]!r}; use another --out")


def run(args) -> int:
    recipe = load_base_recipe(args.recipe, args.set, args.answer_only)
    out = Path(args.out)
    summary = build_base(out, recipe)
    print(f"base reasoner: {out} ({summary['params']} params, {summary['steps']} SFT steps, "
          f"{summary['wall_s']:.0f}s, final loss {summary['final_loss']:.4f})")
    return 0
