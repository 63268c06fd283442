"""A run's log: one JSON line and one console line per optimizer step, plain-words health warnings, and the fault
injection the resume tests use."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

# Keys copied from TRL's logs into train_log.jsonl under our names.
LOG_KEYS = {
    "reward": "reward",
    "accuracy": "accuracy",
    "tokens_mean": "tokens_mean",
    "tokens_median": "tokens_median",
    "tokens_correct_mean": "tokens_correct_mean",
    "tokens_correct_p90": "tokens_correct_p90",
    "tokens_wrong_mean": "tokens_wrong_mean",
    "tokens_wrong_p90": "tokens_wrong_p90",
    "frac_groups_all_correct": "frac_all_correct",
    "frac_groups_all_wrong": "frac_all_wrong",
    "truncated_frac": "truncated_frac",
    "generated_tokens": "generated_tokens",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "loss": "loss",
    "learning_rate": "lr",
    "dynamic_sampling/rounds": "sampling_rounds",
    "dynamic_sampling/informative_first_round": "informative_first_round",
    "dynamic_sampling/informative_final": "informative_final",
}


CONSOLE = (("reward", "{:.3f}"), ("accuracy", "{:.3f}"), ("tokens_mean", "{:.1f}"), ("tokens_correct_mean", "{:.1f}"),
           ("tokens_wrong_mean", "{:.1f}"), ("frac_all_correct", "{:.2f}"), ("frac_all_wrong", "{:.2f}"),
           ("truncated_frac", "{:.2f}"), ("kl", "{:.4f}"), ("clip_ratio", "{:.3f}"), ("entropy", "{:.3f}"),
           ("sampling_rounds", "{:.0f}"), ("informative_final", "{:.2f}"), ("s_per_rollout", "{:.1f}"),
           ("gen_tokens_per_s", "{:.0f}"))


def health_warnings(row: dict, history: list[dict]) -> list[str]:
    """Plain-words warnings for one log row, given the rows before it (the checks a user of RL runs asks first)."""
    out = []
    no_signal = row.get("frac_all_correct", 0.0) + row.get("frac_all_wrong", 0.0)
    if no_signal > 0.9:
        out.append(f"{no_signal:.0%} of prompt groups are all right or all wrong: they carry no learning signal "
                   "(data too easy or too hard for this model)")
    budgets = any(k.endswith("/over_budget") for k in row)  # a budget-tier run: a tier's rollouts stop at its budget
    if row.get("truncated_frac", 0.0) > 0.2 and budgets:
        out.append(f"{row['truncated_frac']:.0%} of completions stopped unfinished, at max_completion_length or at "
                   "their tier's budget (over budget by tier: the line above), and are graded wrong")
    elif row.get("truncated_frac", 0.0) > 0.2:
        out.append(f"{row['truncated_frac']:.0%} of completions hit max_completion_length and are graded wrong; "
                   "raise the limit or expect the length penalty to be dominated by truncation")
    past = [h["kl"] for h in history[-10:] if isinstance(h.get("kl"), float) and math.isfinite(h["kl"])]
    kl = row.get("kl")
    if past and isinstance(kl, float) and kl > 1e-3 and kl > 5 * max(statistics.median(past), 1e-3):
        out.append(f"KL to the reference jumped to {kl:.4g} (median of the last {len(past)} logged steps "
                   f"{statistics.median(past):.3g}); the learning rate may be too high")
    # A sequence-level clip ratio spikes to 0.1-0.2 in healthy runs here; a third of the batch clipped is not healthy.
    if row.get("clip_ratio", 0.0) > 0.3:
        out.append(f"{row['clip_ratio']:.0%} of the batch (of sequences, or of tokens under the official rule) was "
                   "clipped: the policy moved far within one rollout; "
                   "lower the learning rate or the updates per rollout")
    return out


def make_log_callback(log_path: Path, console: bool = True, updates_per_rollout: int = 1):
    """One JSON line per optimizer step in ``log_path`` and one console line per step, with health warnings.

    The row of a rollout's last update also carries ``s_per_rollout`` (wall time of the rollout: sampling, grading
    and all its updates) and ``gen_tokens_per_s`` (tokens generated in the rollout over that time).
    """
    import time

    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict] = []
            self.t_rollout = time.perf_counter()
            self.generated = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_rollout = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step}
            for src, dst in LOG_KEYS.items():
                for key in (src, f"train/{src}"):
                    value = logs.get(key)
                    if isinstance(value, int | float) and math.isfinite(value):
                        row[dst] = value
            for key, value in logs.items():  # a conditioned run's per-tier metrics (`tier_metrics`)
                name = key.removeprefix("train/")
                if name.startswith("tier/") and isinstance(value, int | float) and math.isfinite(value):
                    row[name] = value
            if len(row) == 1:
                return
            self.generated = row.get("generated_tokens", self.generated)
            if state.global_step % updates_per_rollout == 0:  # the last update of a rollout
                now = time.perf_counter()
                row["s_per_rollout"] = now - self.t_rollout
                if self.generated is not None:
                    row["gen_tokens_per_s"] = self.generated / max(row["s_per_rollout"], 1e-9)
                self.t_rollout, self.generated = now, None
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if console:
                parts = [f"step {row['step']:4d}"]
                parts += [f"{key} " + fmt.format(row[key]) for key, fmt in CONSOLE if key in row]
                tiers = sorted(((k.split("/")[1], v) for k, v in row.items() if k.startswith("tier/") and
                                k.endswith("/tokens_mean")), key=lambda t: float(t[0]))
                over = sorted(((k.split("/")[1], v) for k, v in row.items() if k.startswith("tier/") and
                               k.endswith("/over_budget")), key=lambda t: float(t[0]))
                if tiers:
                    parts.append(f"tokens by {'tier' if over else 'alpha'} "
                                 + " ".join(f"{a}:{v:.0f}" for a, v in tiers))
                if over:
                    parts.append("over budget " + " ".join(f"{a}:{v:.2f}" for a, v in over if float(a) < 1 or v))
                print(" | ".join(parts), flush=True)
                for warning in health_warnings(row, self.history):
                    print(f"warning (step {row['step']}): {warning}", flush=True)
            self.history.append(row)

    return JsonlLogger()


def make_fault_callback():
    """Fault injection for the resume test: ``FRUGALTHINK_KILL_AT_STEP=N`` makes the process SIGKILL itself right
    after the checkpoint of step N is saved -- the same as a ``kill -9`` from outside, at a known moment."""
    import os
    import signal

    from transformers import TrainerCallback

    kill_at = os.environ.get("FRUGALTHINK_KILL_AT_STEP")
    if not kill_at:
        return None

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAfterSave()
