"""LoRA (recipe section ``lora:``): fields checked in one line, the reference is the base model, only adapters train,
the output folder is the merged full model, and a run resumes from an adapter-only checkpoint."""

import json

import pytest
import torch
from tiny_runs import run_train, save_tiny_model

from frugalthink.rl.recipe import LoraRecipe, RLRecipe, build_rloo_config
from frugalthink.rl.train import load_recipe
from frugalthink.util.errors import UserError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("section,message", [
    ("{r: 0}", r"lora.r must be a positive integer.*got 0"),
    ("{r: 2.5}", r"lora.r: expected an integer"),
    ("{alpha: -1}", r"lora.alpha must be positive"),
    ("{dropout: 0.1}", r"lora.dropout must be 0: .* 0.1 would be ignored"),
    ("{target_modules: []}", r"lora.target_modules must name at least one module"),
    ("{target_modules: q_proj}", r"lora.target_modules: expected a list"),
    ("{rank: 8}", r"lora: unknown field\(s\) rank"),
    ("16", r"lora: expected a mapping"),
])
def test_bad_lora_fields_name_the_field_in_one_line(tmp_path, section, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: m\nlora: {section}\n")
    with pytest.raises(UserError, match=message) as err:
        load_recipe(str(bad))
    assert "\n" not in str(err.value) and str(err.value).startswith(str(bad))


def test_lora_is_off_by_default_and_a_set_fills_the_rest_from_the_defaults(tmp_path):
    assert RLRecipe(model="m").lora is None
    assert load_recipe("tiny/rl").lora is None  # the demo trains every weight, as before
    recipe = load_recipe("tiny/rl", overrides=["lora.r=8"])
    assert recipe.lora == LoraRecipe(r=8)
    cfg = recipe.lora.peft_config()
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.task_type) == (8, 32.0, 0.0, "CAUSAL_LM")
    assert cfg.target_modules == set(TARGETS)


def _lora_trainer(tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from frugalthink.rl.trainer import FrugalRLOOTrainer

    save_tiny_model(tmp_path / "m")
    recipe = RLRecipe(model=str(tmp_path / "m"), prompts_per_rollout=2, rollouts=1, max_completion_length=6,
                      threads=1, lora=LoraRecipe(r=4))
    trainer = FrugalRLOOTrainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "m"),
                                peft_config=recipe.lora.peft_config(),
                                reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                                args=build_rloo_config(recipe, tmp_path / "run"),
                                train_dataset=Dataset.from_list([{"prompt": "a"}, {"prompt": "b"}]),
                                processing_class=AutoTokenizer.from_pretrained(tmp_path / "m"))
    return trainer, recipe


def _token_logps(model, ids, completion_len):
    logits = model(input_ids=ids).logits[:, -completion_len - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, ids[:, -completion_len:, None]).squeeze(-1)


def test_the_reference_of_a_lora_policy_is_the_base_model(tmp_path):
    """TRL builds no reference model for a PEFT policy; the official rule's KL term takes the reference log-probs
    from the policy with its adapters disabled, i.e. from the base weights on disk, not from the adapted policy."""
    from transformers import AutoModelForCausalLM

    trainer, _ = _lora_trainer(tmp_path)
    assert trainer.ref_model is None
    policy = trainer.model
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # base weights frozen
    torch.manual_seed(0)
    with torch.no_grad():  # move the adapters off zero, as training would
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    ids = torch.randint(3, 60, (3, 9))
    batch = {"prompt_ids": ids[:, :4], "prompt_mask": torch.ones(3, 4, dtype=torch.long),
             "completion_ids": ids[:, 4:], "completion_mask": torch.ones(3, 5, dtype=torch.long)}
    ref = trainer._ref_logps(batch)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        expected, adapted = _token_logps(base, ids, 5), _token_logps(policy, ids, 5)
    torch.testing.assert_close(ref, expected, atol=1e-5, rtol=1e-5)
    # measured after `_ref_logps`: the adapters change the policy, and are enabled again once the reference is taken
    assert (ref - adapted).abs().max() > 1e-2


def test_a_lora_run_trains_adapters_only_resumes_and_leaves_a_merged_full_model(tmp_path):
    from safetensors.torch import load_file

    from frugalthink.generation.model_files import load_causal_lm

    save_tiny_model(tmp_path / "m")
    out = tmp_path / "run"
    # DAPO's length shaping gives a random model a learning signal (every chain answer of it is wrong)
    common = ["--set", f"model={tmp_path / 'm'}", "--set", "rollouts=2", "--set", "prompts_per_rollout=4",
              "--set", "max_completion_length=16", "--set", "save_every=1", "--set", "threads=1",
              "--set", "update_rule=official", "--set", "reward=dapo", "--set", "learning_rate=0.05",
              "--set", "lora={r: 4, alpha: 8}", "--out", str(out)]
    crashed = run_train(common, env={"FRUGALTHINK_KILL_AT_STEP": "2"})  # SIGKILL after the first rollout's checkpoint
    assert crashed.returncode != 0 and not (out / "train_summary.json").exists()
    ckpt = out / "checkpoint-2"
    assert not (ckpt / "model.safetensors").exists()  # a checkpoint holds the adapters only
    assert all("lora_" in k for k in load_file(ckpt / "adapter_model.safetensors"))
    resumed = run_train(common + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == 2
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    kl = {r["step"]: r["kl"] for r in log if "kl" in r}
    assert kl[1] == 0.0  # zero-initialised adapters: the first rollout's policy is the base model
    assert kl[3] != 0.0  # the resumed run holds the trained adapters, measured against the base
    # The output folder is a plain full model (no adapter_config.json beside it), loaded as evaluation loads it
    assert not (out / "adapter_config.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    merged = load_causal_lm(out).state_dict()
    base = load_causal_lm(tmp_path / "m").state_dict()
    assert merged.keys() == base.keys()
    for name, weight in base.items():
        moved = not torch.equal(merged[name], weight)
        assert moved == any(f".{t}." in name for t in TARGETS), name  # merged into the targets, the rest as is
