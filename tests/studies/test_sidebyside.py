"""Side by side: the cutoff never exceeds its budget, the RL reward dispatch equals the pure functions, the offline
baselines pick the right samples, recipes match the driver, and the quick comparison runs end to end."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalthink.generation.backends import BudgetForcedGenerator, Generation
from frugalthink.peers import rewards as P
from frugalthink.peers.shortest import preference_pairs, shortest_correct
from frugalthink.report.comparison import comparison_table, matched_point, method_style
from frugalthink.rl import rewards as R
from frugalthink.rl.reward_fn import LengthReward, l1_targets
from frugalthink.rl.train import load_recipe
from frugalthink.tasks import get_task
from frugalthink.util.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


# ---- generation cutoff ----------------------------------------------------------------------------------------

class CharTok:
    def encode(self, text, add_special_tokens=False):
        return list(text)


class RandomLengthGen:
    """A fake backend: each completion wants a random length; it stops at EOS or at max_new_tokens."""

    name = "fake"
    tokenizer = CharTok()

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.calls = []

    def generate(self, prompts, max_new_tokens, temperature, seed):
        self.calls.append((len(prompts), max_new_tokens))
        out = []
        for _ in prompts:
            want = self.rng.randint(1, 300)
            if want <= max_new_tokens:
                out.append(Generation("x" * (want - 1), want, False))
            else:
                out.append(Generation("x" * max_new_tokens, max_new_tokens, True))
        return out

    def sync(self):
        pass


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 300), st.integers(0, 10_000), st.sampled_from(["</think>\\boxed{", "\n</think>\n\nThe answer is"]))
def test_cutoff_never_exceeds_its_budget(budget, seed, force):
    answer_tokens = 3
    if budget - len(force) - answer_tokens < 1:
        with pytest.raises(UserError, match="no room to think"):
            BudgetForcedGenerator(RandomLengthGen(seed), budget, force, answer_tokens)
        return
    gen = BudgetForcedGenerator(RandomLengthGen(seed), budget, force, answer_tokens)
    outs = gen.generate(["p"] * 16, max_new_tokens=256, temperature=1.0, seed=seed)
    assert all(g.tokens <= budget for g in outs)
    for g in outs:
        if "</think>" in g.text:  # forced: the think part was cut, the forced text follows it
            assert g.text.startswith("x" * min(gen.think_budget, 256))


def test_cutoff_end_to_end_with_a_real_model(tmp_path):
    from frugalthink.eval.evaluate import EvalSettings, evaluate
    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)).save_pretrained(
        tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    opts = {"config": {"min_level": 2, "max_level": 3, "test_size": 8}}
    for budget in (6, 20):
        s = evaluate(EvalSettings(model=str(tmp_path / "m"), task="chain", budget=budget, temperature=1.0,
                                  max_new_tokens=64, latency_requests=2, task_options=opts), tmp_path / f"b{budget}",
                     quiet=True)
        recs = [json.loads(x) for x in (tmp_path / f"b{budget}" / "records.jsonl").read_text().splitlines()]
        lats = [json.loads(x) for x in (tmp_path / f"b{budget}" / "latency.jsonl").read_text().splitlines()]
        assert max(r["tokens"] for r in recs + lats) <= budget
        assert s["settings"]["budget"] == budget
        # an untrained model rambles: most completions are cut and get the forced answer
        assert sum("</think>\\boxed{" in r["completion"] for r in recs) >= len(recs) // 2
    with pytest.raises(UserError, match="budget=6, not 20"):  # a resume may not mix two budgets
        evaluate(EvalSettings(model=str(tmp_path / "m"), task="chain", budget=20, temperature=1.0, latency_requests=2,
                              max_new_tokens=64, task_options=opts), tmp_path / "b6")


# ---- RL reward dispatch ---------------------------------------------------------------------------------------

def _batch():
    # Two prompts x 4 samples, consecutive (groups by position, as the trainer lays them out).
    task = get_task("chain")
    pids = ["12"] * 4 + ["34"] * 4
    answers = ["3"] * 4 + ["7"] * 4
    texts, ids = [], []
    for i, a in enumerate(answers):
        right = i not in (2, 5)
        texts.append(f"<think>x</think>\\boxed{{{a if right else 0}}}")
        ids.append([7] * (4 + 3 * i) + ([1] if i != 6 else []))  # sample 6 truncated -> wrong
    correct = [i not in (2, 5, 6) for i in range(8)]
    return task, pids, answers, texts, ids, correct, [len(x) for x in ids]


@pytest.mark.parametrize("kind", sorted(R.REWARDS))
def test_length_reward_dispatch_equals_the_pure_function(kind):
    task, pids, answers, texts, ids, correct, lengths = _batch()
    opts = {**R.REWARDS[kind].defaults}
    if kind in ("cosine", "dapo"):
        opts["max_len"] = 30
    if kind == "dapo":
        opts["cache"] = 10
    if kind == "l1_max":
        opts["alpha"] = 0.02
    if kind == "dler":
        opts["limit"] = 20
    if kind == "laser":
        opts["target"] = 15
    monitor = None
    if kind in ("laser_d", "laser_de"):  # group 0 (3 of 4 right) is "high" -> 12 tokens; group 1 (2 of 4) "medium" -> 25
        monitor = type("M", (), {"bucket_targets": lambda self, fallback: {"low": fallback, "medium": 25, "high": 12}})()
    if kind in R.BUDGET_REWARDS:  # the two-sided pull on; group 0 is the top tier (no budget, correctness alone)
        opts.update(under=1.0, margin=0.8, fit=0.9)
    targets = [10, 28] * 4 if kind in R.BUDGET_REWARDS else [15, 25] * 4
    top = [True] * 4 + [False] * 4
    got = LengthReward(task, 0.3, {1}, reward=kind, options=opts, num_generations=4, monitor=monitor)(
        prompts=[""] * 8, completions=texts, completion_ids=ids, answer=answers, problem_id=pids, target=targets,
        top=top)
    pulled = lambda r: R.pull_up(r, lengths, R.budget_shares(targets, top, 0.8), 1.0)  # noqa: E731
    paid = R.budget_shares(targets, top, 0.9)  # fit 0.9: paid inside 9 and 25.2 tokens (not sample 7, 26 tokens)
    formed = [i != 6 for i in range(8)]  # sample 6 is truncated: no final answer
    expected = {
        "efficiency": lambda: R.efficiency_rewards(correct, lengths, pids, 0.3),
        "correctness": lambda: [1.0 if c else 0.0 for c in correct],
        "kimi": lambda: P.kimi_length_rewards(correct, lengths, pids, opts["weight"]),
        "l1_max": lambda: P.l1_max_rewards(correct, lengths, targets, opts["alpha"], opts["delta"]),
        "shorter_better": lambda: P.shorter_better_rewards(correct, lengths, pids, opts["alpha"], opts["beta"]),
        "grpo_lead": lambda: P.grpo_lead_rewards(correct, lengths, pids, opts["alpha"]),
        "cosine": lambda: P.cosine_rewards(correct, lengths, **opts),
        "dapo": lambda: P.dapo_rewards(correct, lengths, opts["max_len"], opts["cache"]),
        "dler": lambda: P.truncation_rewards(correct, lengths, 20),
        "laser": lambda: P.laser_rewards(correct, lengths, formed, [15] * 8),
        "laser_d": lambda: P.laser_rewards(correct, lengths, formed, [12] * 4 + [25] * 4),
        # Laser-DE's loop check read from each completion's own token ids
        "laser_de": lambda: P.laser_de_rewards(correct, lengths, [0] * 4 + [1] * 4, formed,
                                               {"low": max(lengths), "medium": 25, "high": 12},
                                               [P.repeats_itself(x) for x in ids]),
        "budget_cutoff": lambda: pulled(R.budget_cutoff_rewards(correct, lengths, paid, top)),
        "budget_l1": lambda: pulled(R.budget_l1_rewards(correct, lengths, paid, opts["slope"], opts["delta"], top)),
        "budget_efficiency": lambda: pulled(R.budget_efficiency_rewards(correct, lengths, pids, paid, 0.3, top)),
    }[kind]()
    assert got == pytest.approx(expected)
    assert len(set(got)) > (1 if kind in ("dler", "correctness") else 2)


def test_laser_de_reads_the_loop_check_from_the_token_ids():
    """The two wrong answers with a final answer (samples 2 and 5) run past a 5-token target; written as distinct
    tokens they get the exploration bonus, written as one token repeated (the batch's ids) they do not."""
    task, pids, answers, texts, ids, correct, lengths = _batch()
    monitor = type("M", (), {"bucket_targets": lambda self, fallback: {"low": 5, "medium": 5, "high": 5}})()
    distinct = [list(range(10, 10 + len(x) - 1)) + [1] if i in (2, 5) else x for i, x in enumerate(ids)]

    def rewards(completion_ids):
        return LengthReward(task, 0.0, {1}, reward="laser_de", options=dict(R.REWARDS["laser_de"].defaults),
                            num_generations=4, monitor=monitor)(
            prompts=[""] * 8, completions=texts, completion_ids=completion_ids, answer=answers, problem_id=pids)

    looping, fresh = rewards(ids), rewards(distinct)
    assert [looping[i] for i in (2, 5)] == [-0.5, -0.5] and [fresh[i] for i in (2, 5)] == [0.0, 0.0]
    assert [x for i, x in enumerate(looping) if i not in (2, 5)] == [x for i, x in enumerate(fresh) if i not in (2, 5)]


def test_peer_recipes_extend_the_demo_recipe_and_change_only_the_reward():
    """Only the reward, its options and -- DLER's recipe -- DLER's optimisation setup differ from the demo's."""
    from dataclasses import asdict

    from frugalthink.studies.sidebyside import (
        PEER_REWARDS,
        length_scale,
        load_study,
        peer_options,
        peer_recipe,
        peer_reward,
        peer_setup,
    )

    study = load_study()
    files = sorted(p.stem for p in (ROOT / "recipes" / "tiny" / "peers").glob("*.yaml"))
    assert files == sorted(PEER_REWARDS) == sorted(study.peers)
    ours = asdict(load_recipe("tiny/rl"))
    for reward in PEER_REWARDS:
        rec = asdict(load_recipe(f"tiny/peers/{reward}"))
        assert rec["reward"] == peer_reward(reward) and rec["reward_options"] == peer_options(reward)
        assert rec["reward"] == reward or reward == "drpo"
        setup = peer_setup(reward)
        assert {k for k in rec if rec[k] != ours[k]} <= {"reward", "reward_options", "alpha", *setup}
        built = asdict(peer_recipe(load_recipe("tiny/rl"), reward))  # what the side-by-side trains
        assert {k: built[k] for k in rec} == rec
    assert peer_setup("kimi") == {}
    assert peer_setup("dler")["kl_loss_coef"] == 0.0005 and peer_setup("laser")["advantage"] == "grpo"
    assert peer_setup("drpo")["weight_decay"] == 0.01
    # on tally (a 384-token cap, chain's is 256) the peers' token lengths keep their share of the cap
    tally = load_recipe("tiny/tally/rl")
    assert length_scale(tally.max_completion_length) == 1.5
    for reward, name, value in (("dler", "limit", 96), ("laser", "target", 96), ("l1_max", "targets", [24, 240])):
        assert peer_recipe(tally, reward).reward_options[name] == value
        assert peer_recipe(load_recipe("tiny/rl"), reward).reward_options[name] == peer_options(reward)[name]
    assert peer_recipe(tally, "kimi").reward_options == peer_options("kimi")  # no token lengths among its options
    assert peer_setup("drpo") == {"update_rule": "drpo", "updates_per_rollout": 1, "beta": 0.0, "weight_decay": 0.01}


def test_l1_targets_are_fixed_per_prompt_and_in_range():
    t = l1_targets(["a", "b", "c"] * 50, 16, 160, seed=0)
    assert t == l1_targets(["a", "b", "c"] * 50, 16, 160, seed=0)
    assert all(16 <= x <= 160 for x in t) and t[0] == t[3]
    task = get_task("chain")
    p = task.load("test")[0]
    from frugalthink.organisms.tiny import build_tokenizer
    from frugalthink.tasks.prompts import build_prompt

    tok = build_tokenizer()
    prompt = build_prompt(tok, task, p, length_target=48)
    assert prompt == f"{p.question[:-1]} 48:"
    assert tok.unk_token_id not in tok(prompt)["input_ids"]  # every character is in the tiny vocabulary


# ---- offline baselines ----------------------------------------------------------------------------------------

def _rec(pid, sample, tokens, correct, truncated=False):
    return {"problem_id": pid, "sample": sample, "tokens": tokens, "correct": correct, "truncated": truncated,
            "completion": f"{pid}-{sample}"}


def test_shortest_correct_and_pairs():
    recs = [_rec("a", 0, 30, True), _rec("a", 1, 10, False), _rec("a", 2, 20, True), _rec("a", 3, 50, True),
            _rec("b", 0, 5, False), _rec("b", 1, 9, False),
            _rec("c", 0, 12, True), _rec("c", 1, 12, True),
            _rec("d", 0, 40, True), _rec("d", 1, 8, True, truncated=True)]
    short = shortest_correct(recs)
    assert {k: v["sample"] for k, v in short.items()} == {"a": 2, "c": 0, "d": 0}
    pairs = preference_pairs(recs)
    assert {k: (s["sample"], lg["sample"]) for k, (s, lg) in pairs.items()} == {"a": (2, 3)}  # c: equal lengths


# ---- comparison table -----------------------------------------------------------------------------------------

def test_no_two_methods_share_colour_and_marker():
    styles = [method_style(k) for k in range(40)]  # the tally side-by-side plots 16 methods, chain's up to 20
    assert len(set(styles)) == len(styles)
    assert method_style(12)[0] == method_style(0)[0]  # the palette wraps; the marker tells them apart


def _pt(label, acc, tokens):
    return {"label": label, "accuracy": acc, "accuracy_ci95": [acc - 0.01, acc + 0.01], "mean_tokens": tokens,
            "latency_mean_ms": tokens * 2.0}


def test_matched_accuracy_picks_the_cheapest_qualifying_point():
    pts = [_pt("a", 0.99, 80), _pt("b", 0.97, 40), _pt("c", 0.90, 20)]
    assert matched_point(pts, 1.0)["label"] == "b"
    assert matched_point(pts, 1.0, ratio=0.995) is None
    comp = {"base": _pt("base", 1.0, 100),
            "methods": [{"method": "m", "kind": "k", "points": pts},
                        {"method": "weak", "kind": "k", "points": [_pt("w", 0.5, 10)]},
                        {"method": "none", "kind": "k", "points": [], "note": "no pairs"}]}
    table = comparison_table(comp)
    # AES of b: 60% shorter, 3% of the accuracy lost (weight 5): 0.60 - 0.15
    assert "| m | k | 3 | b | 0.970" in table and "| 40.0 | -60.0% | +0.450 | 80.0 | -60.0% |" in table
    assert "none (most accurate: w)" in table and "not run: no pairs" in table


# ---- end to end -----------------------------------------------------------------------------------------------

def test_quick_sidebyside_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "frugalthink.cli", "sidebyside", "--quick", "--demo", str(tmp_path / "demo"),
           "--out", str(tmp_path / "cmp")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    comp = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    names = [m["method"] for m in comp["methods"]]
    for name in ("ours (alpha sweep)", "generation cutoff", "SFT on shortest correct", "DPO short vs long",
                 "Kimi k1.5 length reward", "L1-Max", "ShorterBetter", "GRPO-LEAD reward", "cosine reward (TRL)",
                 "DAPO overlong (TRL)", "DLER truncation (DLER's setup)", "ours, DLER's setup (alpha sweep)", "Laser",
                 "Laser-D", "Laser-DE", "DRPO (its loss, 0/1 reward)"):
        assert name in names
    points = [comp["base"]] + [p for m in comp["methods"] for p in m["points"]]
    assert all(p["latency_mean_ms"] > 0 and p["latency_ms_per_token"] > 0 for p in points)  # the interleaved pass
    cut = next(m for m in comp["methods"] if m["method"] == "generation cutoff")
    for p in cut["points"]:
        budget = int(p["label"].split("=")[1])
        recs = [json.loads(x) for x in Path(p["eval_dir"], "records.jsonl").read_text().splitlines()]
        assert max(r["tokens"] for r in recs) <= budget
    for reward in ("kimi", "l1_max", "dapo", "dler", "laser", "laser_d", "laser_de"):
        summary = json.loads((tmp_path / "cmp" / reward / "train_summary.json").read_text())
        assert summary["reward"] == reward
    drpo = json.loads((tmp_path / "cmp" / "drpo" / "frugalthink_run.json").read_text())["config"]
    assert drpo["update_rule"] == "drpo" and drpo["reward"] == "correctness"
    dler = json.loads((tmp_path / "cmp" / "dler" / "frugalthink_run.json").read_text())["config"]
    assert dler["dynamic_sampling"] and dler["kl_loss_coef"] == 0.0005 and dler["epsilon_high"] == 0.28
    assert dler["update_rule"] == "official" and dler["loss_agg_mode"] == "token-mean" and dler["beta"] == 0.0
    log = [json.loads(x) for x in (tmp_path / "cmp" / "dler" / "train_log.jsonl").read_text().splitlines()]
    assert all(1 <= r["sampling_rounds"] <= 3 for r in log if "sampling_rounds" in r) and any(
        "sampling_rounds" in r for r in log)
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    assert "Cheapest point at matched accuracy" in (tmp_path / "cmp" / "comparison.md").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # everything finished: only re-reads
    assert again.returncode == 0 and "training [" not in again.stdout
    (tmp_path / "cmp" / "comparison.png").unlink()
    rep = subprocess.run([sys.executable, "-m", "frugalthink.cli", "report", str(tmp_path / "cmp")],
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0 and "| generation cutoff |" in rep.stdout
    assert (tmp_path / "cmp" / "comparison.png").exists()


@pytest.mark.parametrize("override,message", [
    ("method=ppo", "method must be sft, dpo or tiers"),
    ("samples=1", "dpo needs samples >= 2"),
    ("sft_weight=-1", "sft_weight must be >= 0"),
    ("epochs=0", "epochs must be positive"),
])
def test_shortest_recipe_errors(override, message):
    from frugalthink.rl.shortest import load_shortest_recipe

    with pytest.raises(UserError, match=message):
        load_shortest_recipe(str(ROOT / "recipes" / "tiny" / "shortest.yaml"), ["method=dpo", override], None, None)


def test_the_demo_folder_decides_the_task(tmp_path):
    from frugalthink.studies.sidebyside import demo_task
    from frugalthink.util.errors import UserError

    # no demo yet: the default organism (tally), or the one asked for
    assert demo_task(tmp_path / "none", None) == "tally" and demo_task(tmp_path / "none", "chain") == "chain"
    (tmp_path / "summary.json").write_text(json.dumps({"task": "tally"}))
    assert demo_task(tmp_path, None) == "tally" == demo_task(tmp_path, "tally")
    with pytest.raises(UserError, match="holds a demo of task 'tally', not 'chain'"):
        demo_task(tmp_path, "chain")
    (tmp_path / "summary.json").write_text(json.dumps({}))  # a demo from before tally: chain
    assert demo_task(tmp_path, None) == "chain"


def test_a_study_file_names_known_peers_and_whole_settings(tmp_path):
    from frugalthink.studies.sidebyside import load_study

    good = (ROOT / "recipes" / "studies" / "sidebyside.yaml").read_text()
    for bad, message in (("peers:\n  kimi: K\n  nope: N\n", "peers: nope has no recipe"),
                         ("peers: {kimi: K}\nvariants: {laser: [{bonus: 1}]}\n", "variants: laser not among"),
                         ("peers: {kimi: K}\ndpo_settings: [[0.1]]\n", "dpo_settings: each entry")):
        (tmp_path / "s.yaml").write_text(bad)
        with pytest.raises(UserError, match=message):
            load_study(str(tmp_path / "s.yaml"))
    (tmp_path / "ok.yaml").write_text(good)
    assert load_study(str(tmp_path / "ok.yaml")) == load_study()
