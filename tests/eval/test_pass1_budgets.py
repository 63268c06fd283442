"""Evaluation as the field reports it: pass@1 averaged over samples with an interval clustered by problem, accuracy
under absolute token budgets, top_p recorded and passed on, and the R1 recipes' eval sections at the field's
settings. Every expected number is computed by hand in the comments."""

import json
import math
from types import SimpleNamespace

import pytest

from frugalthink.eval.evaluate import MATH_BUDGETS, EvalSettings, check_eval_section, evaluate, parse_budgets
from frugalthink.eval.summary import accuracy_at_token_budgets, format_summary, summarize
from frugalthink.generation.backends import BudgetForcedGenerator, Generation, time_one_request
from frugalthink.util.errors import UserError
from frugalthink.util.stats import clustered_mean_interval, t_quantile_975, wilson_interval


def rec(pid, sample, correct, tokens, truncated=False):
    return {"problem_id": pid, "sample": sample, "correct": correct, "tokens": tokens, "truncated": truncated,
            "reason": "correct" if correct else "mismatch", "level": None, "oracle_tokens": None}


def test_t_quantile_matches_the_printed_tables():
    # t(0.975, df) from any table: 12.7062, 4.3027, 3.1824, 2.5706, 2.2281, 2.0452, 1.9840; z = 1.95996
    for df, table in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706), (10, 2.2281), (29, 2.0452),
                      (100, 1.9840)):
        assert t_quantile_975(df) == pytest.approx(table, abs=1e-4), df
    assert 1.95996 < t_quantile_975(5000) < 1.9606
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_pass1_is_the_mean_of_problem_shares_with_an_interval_clustered_by_problem():
    # six problems, four samples each, right in 3, 3, 2, 2, 1, 1 of them: shares .75 .75 .5 .5 .25 .25
    shares = {"a": 3, "b": 3, "c": 2, "d": 2, "e": 1, "f": 1}
    records = [rec(p, s, s < k, 10 + s) for p, k in shares.items() for s in range(4)]
    s = summarize(records)
    # mean .5; squared deviations 4 x 1/16 -> variance (1/4) / 5 = 1/20; standard error sqrt(1/20 / 6) = sqrt(1/120)
    # = 0.0912871; t(0.975, 5) = 2.570582 -> half-width 0.2346610
    half = 2.570582 * math.sqrt(1 / 120)
    assert s["pass1"] == 0.5 and s["samples_per_problem"] == 4
    assert s["pass1_ci95"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-6)
    assert s["pass1_ci95"] == pytest.approx([0.2653390, 0.7346610], abs=1e-6)
    # the existing fields are unchanged: accuracy over records, Wilson over the problems' shares
    assert s["accuracy"] == 12 / 24
    assert s["accuracy_ci95"] == list(wilson_interval(3.0, 6))
    # more samples of the same problems with the same shares: the clustered interval does not shrink
    doubled = [rec(p, s, s % 4 < k, 10) for p, k in shares.items() for s in range(8)]
    assert summarize(doubled)["pass1_ci95"] == pytest.approx(s["pass1_ci95"])


def test_pass1_weighs_each_problem_once_when_sample_counts_differ():
    # a: 1 of 2 right, b: 3 of 4, c: 0 of 1, d: 1 of 1 -> pass1 = (.5 + .75 + 0 + 1) / 4 = .5625;
    # accuracy (over the 8 records) = 5 / 8 = .625
    records = ([rec("a", 0, True, 5), rec("a", 1, False, 5)] + [rec("b", i, i < 3, 5) for i in range(4)]
               + [rec("c", 0, False, 5), rec("d", 0, True, 5)])
    s = summarize(records)
    assert s["pass1"] == 0.5625 and s["accuracy"] == 0.625 and s["samples_per_problem"] == [1, 4]
    assert summarize([rec("a", 0, True, 5), rec("a", 1, False, 5)])["pass1_ci95"] is None  # one problem
    assert clustered_mean_interval([1.0, 1.0, 1.0]) == (1.0, (1.0, 1.0))  # collapses; Wilson's does not


def test_accuracy_at_absolute_budgets_is_the_truncation_reading():
    # right at 1,500 / 3,000 / 9,000 / 20,000 tokens, wrong at 1,000 and truncated at the 32,768 cap
    records = [rec("p1", 0, True, 1500), rec("p2", 0, True, 3000), rec("p3", 0, True, 9000),
               rec("p4", 0, True, 20000), rec("p5", 0, False, 1000), rec("p6", 0, False, 32768, truncated=True)]
    got = summarize(records, cap=32768, budgets=list(MATH_BUDGETS))["accuracy_at_tokens"]
    # within 2,048: 1 of 6; 4,096: 2; 8,192: 2; 16,384: 3; 32,768: 4 (= accuracy)
    assert got == {"2048": 1 / 6, "4096": 2 / 6, "8192": 2 / 6, "16384": 3 / 6, "32768": 4 / 6}
    assert got["32768"] == summarize(records)["accuracy"]
    # budgets past the cap were not observed: left out; a right sample exactly at the budget counts
    assert accuracy_at_token_budgets(records, [1500, 8192, 16384], cap=8192) == {"1500": 1 / 6, "8192": 2 / 6}
    assert "accuracy_at_tokens" not in summarize(records, cap=32768)
    text = format_summary(summarize(records, cap=32768, budgets=[2048]))
    assert "accuracy within 2048 tokens 0.167" in text


def test_settings_check_top_p_and_budgets():
    r = EvalSettings(model="m", task="aime24").resolved()
    assert r.top_p == 1.0 and r.budgets == list(MATH_BUDGETS) and r.max_new_tokens == 32768
    assert EvalSettings(model="m", task="math500", max_new_tokens=8192).resolved().budgets == [2048, 4096, 8192]
    assert EvalSettings(model="m", task="chain").resolved().budgets is None  # no default off the math benchmarks
    assert EvalSettings(model="m", task="chain", budgets=[64, 32, 64]).resolved().budgets == [32, 64]
    assert EvalSettings(model="m", task="aime24", top_p=0.95).resolved().top_p == 0.95
    for bad in (0, 0.0, -0.1, 1.5, float("nan"), True, "0.9"):
        with pytest.raises(UserError, match="--top-p must be a number in"):
            EvalSettings(model="m", task="aime24", top_p=bad).resolved()
    with pytest.raises(UserError, match="--budgets 512: above --max-new-tokens 256"):
        EvalSettings(model="m", task="chain", budgets=[128, 512]).resolved()
    with pytest.raises(UserError, match="--budgets must be positive"):
        EvalSettings(model="m", task="chain", budgets=[0]).resolved()
    assert parse_budgets("2048, 4096,") == [2048, 4096] and parse_budgets(None) is None
    for bad in ("2k", "", "0,5"):
        with pytest.raises(UserError, match="--budgets"):
            parse_budgets(bad)


def test_cli_takes_top_p_and_budgets():
    from frugalthink.cli import build_parser

    args = build_parser().parse_args(["eval", "--model", "m", "--task", "aime24", "--out", "o"])
    assert args.top_p == 1.0 and args.budgets is None
    args = build_parser().parse_args(["eval", "--model", "m", "--task", "aime24", "--out", "o", "--top-p", "0.95",
                                      "--budgets", "2048,4096"])
    assert args.top_p == 0.95 and parse_budgets(args.budgets) == [2048, 4096]


class RecordingGenerator:
    """Answers every prompt with '\\boxed{1}' and records the keyword arguments of each call."""

    name = "fake"

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def generate(self, prompts, max_new_tokens, temperature, seed, **kw):
        self.calls.append(kw)
        return [Generation("\\boxed{1}", 4, False) for _ in prompts]

    def sync(self):
        pass

    def timed(self, prompt, max_new_tokens, temperature, seed, **kw):
        return time_one_request(self, prompt, max_new_tokens, temperature, seed, **kw)


class OldGenerator(RecordingGenerator):
    """A generator written before top_p existed: no keyword arguments."""

    def generate(self, prompts, max_new_tokens, temperature, seed):
        return super().generate(prompts, max_new_tokens, temperature, seed)


def _settings(**kw):
    return EvalSettings(**{"model": "m", "task": "chain", "samples": 2, "max_new_tokens": 12, "limit": 3,
                           "batch_size": 4, "latency_requests": 1, **kw})


def test_evaluate_passes_top_p_on_and_records_it(tmp_path):
    from frugalthink.organisms.tiny import build_tokenizer

    tok = build_tokenizer()
    gen = RecordingGenerator(tok)
    s = evaluate(_settings(top_p=0.9, budgets=[6, 12]), tmp_path / "a", generator=gen, quiet=True)
    assert gen.calls and all(c == {"top_p": 0.9} for c in gen.calls)  # batches, warm-up and timed requests
    assert s["settings"]["top_p"] == 0.9 and s["settings"]["budgets"] == [6, 12]
    assert json.loads((tmp_path / "a" / "eval_config.json").read_text())["config"]["top_p"] == 0.9
    assert set(s["accuracy_at_tokens"]) == {"6", "12"}
    assert "top_p 0.9" in format_summary(s)
    # at top_p 1 nothing new is passed: a generator written before top_p existed still works
    old = OldGenerator(tok)
    s1 = evaluate(_settings(), tmp_path / "b", generator=old, quiet=True)
    assert old.calls and all(c == {} for c in old.calls) and s1["settings"]["top_p"] == 1.0
    # top_p is part of the evaluation's identity; a folder written before it existed counts as top_p 1.0
    with pytest.raises(UserError, match="top_p=0.9, not 1.0"):
        evaluate(_settings(), tmp_path / "a", generator=gen, quiet=True)
    cfg = tmp_path / "b" / "eval_config.json"
    data = json.loads(cfg.read_text())
    del data["config"]["top_p"]
    cfg.write_text(json.dumps(data))
    evaluate(_settings(), tmp_path / "b", generator=old, quiet=True)
    with pytest.raises(UserError, match="top_p=1.0, not 0.95"):
        evaluate(_settings(top_p=0.95), tmp_path / "b", generator=old, quiet=True)


def test_budget_forcing_passes_top_p_to_both_rounds():
    from frugalthink.organisms.tiny import build_tokenizer

    class Unfinished(RecordingGenerator):
        def generate(self, prompts, max_new_tokens, temperature, seed, **kw):
            self.calls.append(kw)
            return [Generation("x", max_new_tokens, True) for _ in prompts]

    inner = Unfinished(build_tokenizer())
    BudgetForcedGenerator(inner, 40, "\\boxed{", 5).generate(["p"], 100, 0.6, seed=1, top_p=0.8)
    assert inner.calls == [{"top_p": 0.8}, {"top_p": 0.8}]  # thinking, then the forced answer
    inner.calls.clear()
    BudgetForcedGenerator(inner, 40, "\\boxed{", 5).generate(["p"], 100, 0.6, seed=1)
    assert inner.calls == [{}, {}]


def test_vllm_gets_top_p(monkeypatch):
    import sys
    import types

    from frugalthink.generation.backends import VLLMGenerator
    from frugalthink.organisms.tiny import build_tokenizer

    sent = []
    fake = types.ModuleType("vllm")
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    tok = build_tokenizer()

    class LLM:
        def get_tokenizer(self):
            return tok

        def generate(self, requests, params, use_tqdm):
            sent.extend(params)
            out = SimpleNamespace(token_ids=[tok.eos_token_id], finish_reason="stop")
            return [SimpleNamespace(outputs=[out]) for _ in requests]

    gen = VLLMGenerator("unused", llm=LLM())
    gen.generate(["a", "b"], 8, 0.6, seed=3, top_p=0.95)
    gen.generate(["a"], 8, 0.6, seed=3)
    assert [p["top_p"] for p in sent] == [0.95, 0.95, 1.0] and all(p["temperature"] == 0.6 for p in sent)


@pytest.mark.parametrize("text,message", [
    ("{top_p: 0}", "eval.top_p: must be a number in"),
    ("{top_p: 1.5}", "eval.top_p: must be a number in"),
    ("{top_p: high}", "eval.top_p: must be a number in"),
    ("{budgets: 2048}", "eval.budgets: expected a list"),
    ("{budgets: [0, 2048]}", "eval.budgets: expected a list"),
    ("{max_new_tokens: 4096, budgets: [2048, 8192]}", "reach past eval.max_new_tokens 4096"),
])
def test_eval_section_checks_top_p_and_budgets(text, message):
    import yaml

    with pytest.raises(UserError, match=message):
        check_eval_section(SimpleNamespace(eval=yaml.safe_load(text)))
    check_eval_section(SimpleNamespace(eval={"top_p": 0.95, "budgets": [2048], "max_new_tokens": 32768}))


@pytest.mark.parametrize("size", ["1.5b", "7b"])
def test_r1_recipes_evaluate_at_the_fields_settings(size):
    from frugalthink.rl.train import load_recipe

    for name in ("rl", "laser", "dler", "drpo", "laser_d", "laser_de", "conditioned"):
        ev = load_recipe(f"r1-distill-qwen-{size}/{name}").eval  # load_recipe runs check_eval_section
        assert ev["tasks"]["aime24"] >= 16 and ev["tasks"]["math500"] == 3 and ev["tasks"]["gsm8k"] == 1
        assert (ev["temperature"], ev["top_p"], ev["max_new_tokens"]) == (0.6, 0.95, 32768)
        assert ev["budgets"] == list(MATH_BUDGETS)
