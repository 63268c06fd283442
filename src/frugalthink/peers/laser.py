"""Laser-D's target lengths: a monitor that measures the policy on a fixed set of training prompts and sets one
target length per difficulty bucket (Liu et al., ICLR 2026, arXiv:2505.15612; hkust-nlp/Laser ``ray_trainer.py``
``_monitor`` and ``length_penalty.py`` ``_choose_target_length``).

Every ``monitor_every`` rollouts (and once before training) the policy samples ``monitor_samples`` completions of
each of ``monitor_prompts`` training prompts at ``monitor_temperature``; each prompt falls in a band by its
accuracy (<= 1/3 low, <= 2/3 medium, else high), and each band's target is the smallest length ``L`` of a grid
whose *coverage* -- the share of all the band's responses, right or wrong, no longer than ``L`` -- satisfies
``floor(coverage * n_band) >= expected_correct``, with ``n_band = floor(2k/3)`` (high), ``floor(k/3)`` (medium),
``1`` (low): the length by which a group of that difficulty can be expected to have ``expected_correct``
responses. A band with no such length (or no prompts) has no target; the reward then uses the longest response of
the current training batch, as the published code does.

The state -- the three targets and the rollout they were measured at -- is saved in every checkpoint
(``laser_monitor.json``) and restored on resume, so a resumed run continues with the targets an uninterrupted run
would have (the published code re-measures at the resumed step instead).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

STATE_FILE = "laser_monitor.json"
BANDS = ("low", "medium", "high")


def monitor_band(accuracy: float) -> str:
    return "low" if accuracy <= 1 / 3 else ("medium" if accuracy <= 2 / 3 else "high")


def band_size(band: str, k: int) -> int:
    return {"high": math.floor(2 * k / 3), "medium": math.floor(k / 3), "low": 1}[band]


def choose_target(lengths: Sequence[int], grid: Sequence[int], n_band: int, expected_correct: int = 1) -> int | None:
    """The smallest grid length whose coverage of ``lengths`` gives ``floor(coverage * n_band) >= expected_correct``.

    >>> choose_target([10, 20, 30, 40, 50], [16, 32, 48, 64], n_band=5)   # coverage 0.2 at 16: floor(1.0) = 1
    16
    >>> choose_target([10, 20, 30, 40, 50], [16, 32, 48, 64], n_band=2)   # needs coverage 0.5: 3 of 5 <= 32
    32
    """
    if not lengths:
        return None
    for g in sorted(grid):
        cover = sum(n <= g for n in lengths) / len(lengths)
        if math.floor(cover * n_band + 1e-9) >= expected_correct:
            return int(g)
    return None


def choose_targets(per_prompt: Sequence[tuple[Sequence[bool], Sequence[int]]], grid: Sequence[int], k: int,
                   expected_correct: int = 1) -> dict[str, int | None]:
    """Targets per band from the monitor's samples: ``per_prompt`` = (correct flags, lengths) of each prompt."""
    lengths: dict[str, list[int]] = {b: [] for b in BANDS}
    for correct, lens in per_prompt:
        lengths[monitor_band(sum(correct) / len(correct))].extend(lens)
    return {b: choose_target(lengths[b], grid, band_size(b, k), expected_correct) for b in BANDS}


def default_grid(max_len: int, steps: int = 16) -> list[int]:
    """``steps`` evenly spaced lengths up to the generation cap (the published grid: 1024..16384 in steps of 1024
    under a 16k cap)."""
    step = max(1, max_len // steps)
    return list(range(step, max_len + 1, step))


class LaserMonitor:
    """Holds the bucket targets; `measure` re-measures them with a model (see the module docstring)."""

    def __init__(self, task, tokenizer, problems, prompts: list[str], options: dict, max_new_tokens: int,
                 eos_ids, seed: int = 0) -> None:
        self.task, self.tokenizer, self.problems, self.prompts = task, tokenizer, problems, prompts
        self.every = int(options["monitor_every"])
        self.k = int(options["monitor_samples"])
        self.temperature = float(options["monitor_temperature"])
        self.expected = int(options["expected_correct"])
        self.grid = list(options.get("grid") or default_grid(max_new_tokens))
        self.max_new, self.eos, self.seed = max_new_tokens, set(eos_ids), seed
        self.targets: dict[str, int | None] = dict.fromkeys(BANDS)
        self.rollout: int | None = None  # the rollout the targets were measured before

    def due(self, rollout: int) -> bool:
        return self.rollout is None or (rollout % self.every == 0 and rollout != self.rollout)

    def bucket_targets(self, fallback: int) -> dict[str, int]:
        """The targets the reward uses; a band without one gets ``fallback`` (the batch's longest response)."""
        return {b: (t if t is not None else fallback) for b, t in self.targets.items()}

    def measure(self, model, rollout: int) -> dict[str, int | None]:
        import torch

        from frugalthink.generation.decoding import sample
        from frugalthink.tasks.prompts import decode_completion, encode_prompt, opens_thinking

        ids = [encode_prompt(self.tokenizer, p) for p in self.prompts for _ in range(self.k)]
        # the monitor must not shift the training's random stream: its own seed, the old state restored after
        cpu_state = torch.random.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        torch.manual_seed(self.seed * 1000003 + rollout)
        was_training = model.training
        model.eval()  # also keeps gradient checkpointing (which turns the KV cache off in training mode) out
        try:
            outs = sample(model, ids, self.max_new, self.temperature, self.eos, self.tokenizer.pad_token_id)
        finally:
            model.train(was_training)
            torch.random.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
        texts = [decode_completion(self.tokenizer, o, self.eos) for o in outs]
        truncated = [not o or o[-1] not in self.eos for o in outs]
        problems = [p for p in self.problems for _ in range(self.k)]
        thinking = [opens_thinking(p) for p in self.prompts for _ in range(self.k)]
        grades = self.task.grade(texts, problems, truncated, thinking_open=thinking)
        per_prompt = []
        for j in range(len(self.prompts)):
            part = slice(j * self.k, (j + 1) * self.k)
            per_prompt.append(([g.correct for g in grades[part]], [len(o) for o in outs[part]]))
        self.targets, self.rollout = choose_targets(per_prompt, self.grid, self.k, self.expected), rollout
        return self.targets

    def state_dict(self) -> dict:
        return {"targets": self.targets, "rollout": self.rollout, "grid": self.grid}

    def load_state_dict(self, state: dict) -> None:
        self.targets = {b: state["targets"].get(b) for b in BANDS}
        self.rollout = state["rollout"]

    def save(self, folder: str | Path) -> None:
        Path(folder, STATE_FILE).write_text(json.dumps(self.state_dict()) + "\n")

    def load(self, folder: str | Path) -> bool:
        path = Path(folder, STATE_FILE)
        if not path.exists():
            return False
        self.load_state_dict(json.loads(path.read_text()))
        return True


def make_monitor_callback(monitor: LaserMonitor, updates_per_rollout: int, log=print):
    """A TrainerCallback that measures before the first rollout and every ``monitor.every`` rollouts, and writes the
    monitor's state into each checkpoint."""
    from transformers import TrainerCallback

    class LaserMonitorCallback(TrainerCallback):
        def _maybe_measure(self, state, model) -> None:
            if state.global_step % updates_per_rollout or (state.max_steps and state.global_step >= state.max_steps):
                return  # mid-rollout, or after the last rollout (no training left to use the targets)
            rollout = state.global_step // updates_per_rollout
            if monitor.due(rollout):
                targets = monitor.measure(model, rollout)
                if state.is_world_process_zero:
                    log(f"laser-d monitor (rollout {rollout}): target tokens {targets}")

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._maybe_measure(state, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self._maybe_measure(state, model)

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir, f"checkpoint-{state.global_step}")
                folder.mkdir(parents=True, exist_ok=True)
                monitor.save(folder)

    return LaserMonitorCallback()
