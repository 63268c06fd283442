"""A tiny TRL GRPOTrainer run with `FrugalReward` on the shipped tally base, recording every reward call.

In-process: ``run(out_dir, per_device)``. Under torchrun (``torchrun --nproc_per_node 2 grpo_run.py OUT``) each
process writes OUT/calls-rank<R>.json: per reward call, the reward's name, its prompts, completion ids, answers,
problem ids and the rewards it returned for this process's slice.
"""

import json
import os
import sys
from pathlib import Path

K = 4  # num_generations
CAP = 128  # max_completion_length: the tally base overthinks past it now and then (truncated -> wrong)
ALPHA = 0.3


class Recorder:
    """Wraps a reward function; keeps what each call saw and returned."""

    def __init__(self, fn, sink: list) -> None:
        self.fn, self.sink, self.__name__ = fn, sink, fn.__name__

    def __call__(self, prompts, completions, completion_ids, **kwargs):
        rewards = self.fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        self.sink.append({"name": self.__name__, "prompts": list(prompts), "completion_ids": [list(c) for c in completion_ids],
                          "answer": list(kwargs["answer"]), "problem_id": list(kwargs["problem_id"]),
                          "rewards": list(rewards)})
        return rewards


def base_dir() -> Path:
    import frugalthink

    return Path(frugalthink.__file__).parent / "models" / "tally-base"


def run(out_dir, per_device: int, steps: int = 2) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from frugalthink.integrations.trl import FrugalReward
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(base_dir())
    model = AutoModelForCausalLM.from_pretrained(base_dir())
    task = get_task("tally")
    problems = task.load("train")[:32]
    data = Dataset.from_list([{"prompt": build_prompt(tok, task, p), "answer": p.answer, "problem_id": p.id}
                              for p in problems])
    calls: list[dict] = []
    rewards = [Recorder(FrugalReward("tally", alpha=ALPHA, num_generations=K, tokenizer=tok), calls),
               Recorder(FrugalReward(task, reward="laser", num_generations=K, tokenizer=tok, max_completion_length=CAP),
                        calls)]
    args = GRPOConfig(output_dir=str(out_dir), per_device_train_batch_size=per_device, num_generations=K,
                      max_completion_length=CAP, max_steps=steps, learning_rate=1e-4, beta=0.0, temperature=1.0,
                      scale_rewards="none", use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, seed=0,
                      dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, args=args, reward_funcs=rewards, train_dataset=data, processing_class=tok)
    trainer.train()
    return calls


if __name__ == "__main__":
    out = Path(sys.argv[1])
    calls = run(out, per_device=int(sys.argv[2]) if len(sys.argv) > 2 else 6)
    (out / f"calls-rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(calls))
