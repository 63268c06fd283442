"""Alpha-conditioned training: the control line, per-prompt alphas, per-group rewards, eval --alpha/--effort, and a
conditioned sweep whose family.json `report` and `pick` read like any other."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_tokenizers import r1_tokenizer_dir

from frugalthink.rl import rewards as R
from frugalthink.rl.reward_fn import LengthReward
from frugalthink.tasks import get_task
from frugalthink.tasks.conditioning import control_text, effort_alpha, prompt_alphas
from frugalthink.tasks.prompts import build_prompt
from frugalthink.util.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_prompt_alphas_are_fixed_by_id_and_seed_and_cover_the_set():
    ids = [str(i) for i in range(400)]
    a = prompt_alphas(ids, [0.0, 0.1, 0.4], seed=0)
    assert a == prompt_alphas(ids, [0.0, 0.1, 0.4], seed=0) and a != prompt_alphas(ids, [0.0, 0.1, 0.4], seed=1)
    assert {x: a.count(x) for x in set(a)}.keys() == {0.0, 0.1, 0.4}
    assert all(90 <= a.count(x) <= 180 for x in (0.0, 0.1, 0.4))


def test_control_line_is_in_the_user_turn_with_or_without_a_chat_template(tmp_path):
    chain = get_task("chain")
    p = chain.load("test")[0]
    tiny = build_prompt(None, chain, p, alpha=0.2)
    assert tiny == p.question[:-1] + "!!!!:" and control_text(0.05) == "alpha=0.05\n"  # where budgets go
    assert build_prompt(None, get_task("tally"), p, alpha=0) == p.question  # alpha 0: the bare prompt
    assert build_prompt(None, get_task("tally"), p, alpha=0.3) == p.question[:-1] + "!!!!!!:"
    with pytest.raises(UserError, match="alpha 0.13: the embedded tasks write alpha as marks of 0.05"):
        build_prompt(None, chain, p, alpha=0.13)
    assert build_prompt(None, chain, p) == p.question
    with pytest.raises(ValueError, match="one of a length target, an alpha and a budget ratio"):
        build_prompt(None, chain, p, alpha=0.2, length_target=40)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(r1_tokenizer_dir(tmp_path / "r1"))
    math = get_task("math500")
    q = math.load("test")[0]
    plain, with_alpha = build_prompt(tok, math, q), build_prompt(tok, math, q, alpha=0.4)
    assert with_alpha == plain.replace(q.question, "alpha=0.4\n" + q.question, 1)
    assert with_alpha.index("alpha=0.4") > with_alpha.index("｜User｜") and with_alpha.endswith(plain[-20:])


def test_each_group_is_rewarded_with_its_own_alpha():
    reward = LengthReward(get_task("chain"), alpha=0.0, eos_token_ids=[1], num_generations=4)
    correct = [True, True, False, True] * 3
    lengths = [10, 20, 5, 30, 12, 18, 9, 40, 11, 14, 8, 25]
    groups = [i // 4 for i in range(12)]
    alphas = [0.0] * 4 + [0.4] * 4 + [0.1] * 4
    got = reward.rewards(correct, lengths, groups, [0] * 12, alphas)
    for g, a in enumerate((0.0, 0.4, 0.1)):
        sl = slice(4 * g, 4 * g + 4)
        assert got[sl] == pytest.approx(R.efficiency_rewards(correct[sl], lengths[sl], groups[sl], a))
    assert got != pytest.approx(reward.rewards(correct, lengths, groups, [0] * 12))  # one alpha would differ


def test_recipe_checks(tmp_path):
    from frugalthink.rl.train import load_recipe

    with pytest.raises(UserError, match="alphas: every alpha"):
        load_recipe("tiny/rl", None, ["alphas=[0.1, 1.5]"])
    with pytest.raises(UserError, match="needs reward: efficiency"):
        load_recipe("tiny/rl", None, ["alphas=[0.1]", "reward=kimi"])
    with pytest.raises(UserError, match="efforts: named efforts need"):
        load_recipe("tiny/rl", None, ["efforts={low: 0.4}"])
    with pytest.raises(UserError, match="tier_beta: a KL coefficient per tier needs"):
        load_recipe("tiny/rl", None, ["tier_beta={0.0: 0.05}"])
    with pytest.raises(UserError, match=r"tier_beta: 0.3 not among the trained alphas"):
        load_recipe("tiny/rl", None, ["alphas=[0.0, 0.4]", "tier_beta={0.3: 0.05}"])
    with pytest.raises(UserError, match="tier_beta: needs beta > 0"):
        load_recipe("tiny/rl", None, ["alphas=[0.0, 0.4]", "tier_beta={0.0: 0.05}", "beta=0"])
    with pytest.raises(UserError, match="tier_beta: every beta must be >= 0"):
        load_recipe("tiny/rl", None, ["alphas=[0.0, 0.4]", "tier_beta={0.0: -1}"])
    # as saved in a run's JSON config the keys are strings; they read back as alphas
    with pytest.raises(UserError, match="tier_balance: balances the tiers of an alpha-conditioned or budget-tier recipe"):
        load_recipe("tiny/rl", None, ["tier_balance=true"])
    with pytest.raises(UserError, match="tier_balance: needs update_rule trl, not 'official'"):
        load_recipe("tiny/rl", None, ["alphas=[0.0, 0.4]", "tier_balance=true", "update_rule=official"])
    rec = load_recipe("tiny/rl", None, ["alphas=[0.0, 0.4]", "tier_beta={'0.0': 0.05}"])
    assert rec.tier_beta == {0.0: 0.05}


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "frugalthink.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_conditioned_sweep_trains_once_and_evaluates_per_alpha(tmp_path):
    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)).save_pretrained(
        tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    out = tmp_path / "fam"
    small = ["--set", f"model={tmp_path / 'm'}", "--set", "rollouts=2", "--set", "prompts_per_rollout=4",
             "--set", "max_completion_length=16", "--set", "threads=1", "--set", "efforts={low: 0.4, high: 0.0}",
             "--set", "tier_beta={0.0: 0.05}", "--set", "task_options={config: {min_level: 2, max_level: 3, test_size: 4}}"]
    res = _cli("sweep", "--recipe", "tiny/rl", *small, "--conditioned", "--alphas", "0,0.4", "--eval-alphas",
               "0,0.2,0.4,0.5", "--latency-requests", "0", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    # an alpha past the trained range is evaluated, with a note; one inside it is not noted
    assert res.stderr.count("outside the trained alphas") == 1 and "alpha 0.5 lies outside" in res.stderr
    fam = json.loads((out / "family.json").read_text())
    assert fam["conditioned"] and [m["alpha"] for m in fam["members"]] == [0.0, 0.2, 0.4, 0.5]
    assert [m["seen_in_training"] for m in fam["members"]] == [True, False, True, False]
    assert {m["model"] for m in fam["members"]} == {str(out / "conditioned")}
    run = json.loads((out / "conditioned" / "frugalthink_run.json").read_text())["config"]
    assert run["alphas"] == [0.0, 0.4] and run["tier_beta"] in ({"0.0": 0.05}, {0.0: 0.05})
    log = [json.loads(line) for line in (out / "conditioned" / "train_log.jsonl").read_text().splitlines()]
    assert any("tier/0/tokens_mean" in row and "tier/0.4/tokens_mean" in row for row in log)
    for m in fam["members"]:
        cfg = json.loads((Path(m["eval_dir"]) / "eval_config.json").read_text())["config"]
        assert cfg["alpha"] == m["alpha"]
    assert _cli("pick", str(out), "--min-accuracy", "0").returncode in (0, 1)
    assert _cli("report", str(out)).returncode == 0
    assert effort_alpha(out / "conditioned", "low") == 0.4
    other = _cli("sweep", "--recipe", "tiny/rl", *small, "--conditioned", "--alphas", "0,0.2,0.4", "--latency-requests",
                 "0", "--out", str(out))  # the folder's model was trained on other alphas: refused, not reused
    assert other.returncode == 2 and "trained on alphas [0.0, 0.4]" in other.stderr, other.stderr[-1000:]
    # eval --alpha / --effort on the conditioned model; both refused on a model trained for one alpha
    ok = _cli("eval", "--model", str(out / "conditioned"), "--task", "chain", "--effort", "high", "--limit", "2",
              "--max-new-tokens", "8", "--latency-requests", "0", "--out", str(tmp_path / "e"))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads((tmp_path / "e" / "eval_config.json").read_text())["config"]["alpha"] == 0.0
    assert "outside the trained alphas" not in ok.stderr
    past = _cli("eval", "--model", str(out / "conditioned"), "--task", "chain", "--alpha", "0.6", "--limit", "2",
                "--max-new-tokens", "8", "--latency-requests", "0", "--out", str(tmp_path / "e6"))
    assert past.returncode == 0 and "--alpha: alpha 0.6 lies outside the trained alphas 0-0.4" in past.stderr
    for flag, value in (("--alpha", "0.2"), ("--effort", "low")):
        bad = _cli("eval", "--model", str(tmp_path / "m"), "--task", "chain", flag, value, "--out", str(tmp_path / "x"))
        assert bad.returncode == 2 and "not an alpha-conditioned model" in bad.stderr
    unknown = _cli("eval", "--model", str(out / "conditioned"), "--task", "chain", "--effort", "max",
                   "--out", str(tmp_path / "y"))
    assert unknown.returncode == 2 and "the model knows high, low" in unknown.stderr


def _fake_family(tmp_path):
    """Two helpers writing synthetic evaluations (30 problems; ``wrong`` of them wrong, the first ones unless
    ``wrong_from`` says where they start) and family folders of them."""

    def ev(name, tokens, wrong=0, wrong_from=0, bump=0):
        d = tmp_path / name
        d.mkdir()
        rows = [{"problem_id": str(i), "sample": 0, "tokens": tokens + i % 2 + (i < bump),
                 "correct": not wrong_from <= i < wrong_from + wrong} for i in range(30)]
        (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"eval_dir": str(d), "mean_tokens": tokens + 0.5 + bump / 30, "accuracy": 1 - wrong / 30}

    def family(d, members):
        d.mkdir()
        (d / "family.json").write_text(json.dumps({"base": {}, "members": members}))
        return d

    return ev, family


def test_conditioned_vs_separate_script(tmp_path):
    from frugalthink.studies import conditioned as cvs

    ev, family = _fake_family(tmp_path)
    cond = family(tmp_path / "cond", [{"alpha": 0.0, **ev("c0", 100)}, {"alpha": 0.1, "seen_in_training": False,
                                       **ev("c1", 80)}, {"alpha": 0.2, **ev("c2", 50, wrong=3)}])
    sep = family(tmp_path / "sep", [{"alpha": 0.0, "seed": 0, **ev("s0", 100)}, {"alpha": 0.2, **ev("s2", 60)}])
    res = cvs.compare(cond, sep)
    rows = {r["alpha"]: r for r in res["rows"]}
    assert res["tokens_fall_with_alpha"] and rows[0.1]["between_neighbours"] and "separate" not in rows[0.1]
    assert rows[0.2]["tokens_diff"]["mean_diff"] == pytest.approx(-10.0)
    assert rows[0.2]["mcnemar"]["a_only"] == 3 and rows[0.0]["mcnemar"]["p"] == 1.0
    worse = family(tmp_path / "worse", [{"alpha": 0.0, **ev("w0", 100)}, {"alpha": 0.1, "seen_in_training": False,
                                         **ev("w1", 120)}, {"alpha": 0.2, **ev("w2", 50)}])
    res = cvs.compare(worse, sep)
    assert not res["tokens_fall_with_alpha"] and not res["rows"][1]["between_neighbours"]
    flat = family(tmp_path / "flat", [{"alpha": a, "seen_in_training": a != 0.1, **ev(f"f{a}", 40)}
                                      for a in (0.0, 0.1, 0.2)])
    res = cvs.compare(flat, sep)  # every tier the same length: nothing falls, nothing lies between
    assert not res["tokens_fall_with_alpha"] and not res["rows"][1]["between_neighbours"]
    # tiers 1/3 token apart at each step: significant, but not apart by the default 1 token (by a 0.1-token gap, yes)
    close = family(tmp_path / "close", [{"alpha": 0.0, **ev("k0", 40, bump=20)},
                                        {"alpha": 0.1, "seen_in_training": False, **ev("k1", 40, bump=10)},
                                        {"alpha": 0.2, **ev("k2", 40)}])
    res, loose = cvs.compare(close, sep), cvs.compare(close, sep, min_gap=0.1)
    assert not res["tokens_fall_with_alpha"] and not res["rows"][1]["between_neighbours"]
    assert loose["tokens_fall_with_alpha"] and loose["rows"][1]["between_neighbours"]
    # verdicts: 3 of 30 wrong is not significant (McNemar p = 0.25), 10 of 30 is; 20 more tokens always are
    assert rows[0.0]["verdict"] == "as good or better" and rows[0.2]["verdict"] == "as good or better (fewer tokens)"
    mixed = family(tmp_path / "mixed", [{"alpha": 0.0, **ev("m0", 120)}, {"alpha": 0.2, **ev("m2", 40, wrong=10)}])
    rows = {r["alpha"]: r["verdict"] for r in cvs.compare(mixed, sep)["rows"]}
    assert rows == {0.0: "more tokens", 0.2: "less accurate; fewer tokens"}
    cvs.plot([mixed, flat], [sep], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_conditioned_vs_separate_over_seeds(tmp_path):
    """The verdict over training seeds counts the separate members' own seed spread: a conditioned point that one
    seed pair calls longer is as good when the members' seeds are as far apart; a point worse than every seed of the
    members stays worse. And the single-pair verdict is applied to the members' seeds against each other."""
    from frugalthink.studies import conditioned as cvs

    ev, family = _fake_family(tmp_path)
    sep0 = family(tmp_path / "sep0", [{"alpha": 0.2, "seed": 0, **ev("s0", 50)}])
    sep1 = family(tmp_path / "sep1", [{"alpha": 0.2, "seed": 1, **ev("s1", 60)}])
    cond0 = family(tmp_path / "cond0", [{"alpha": 0.2, **ev("c0", 56)}, {"alpha": 0.3, "seen_in_training": False,
                                                                       **ev("c0u", 50)}])
    cond1 = family(tmp_path / "cond1", [{"alpha": 0.2, **ev("c1", 54)}])
    assert cvs.compare(cond0, sep0)["rows"][0]["verdict"] == "more tokens"  # one pair: +6 tokens, significant
    res = cvs.pooled([cond0, cond1], [sep0, sep1])
    (row,) = res["rows"]  # the unseen 0.3 has no member
    assert row["tokens_diff"]["mean_diff"] == pytest.approx(0.0) and row["verdict"] == "as good or better"
    assert [x["tokens"] for x in row["separate"]] == [50.5, 60.5] and row["items"] == 30
    worse0 = family(tmp_path / "worse0", [{"alpha": 0.2, **ev("w0", 70, wrong=12)}])
    worse1 = family(tmp_path / "worse1", [{"alpha": 0.2, **ev("w1", 72, wrong=12, wrong_from=10)}])
    (row,) = cvs.pooled([worse0, worse1], [sep0, sep1])["rows"]
    assert row["accuracy_diff"]["mean_diff"] == pytest.approx(-0.4) and row["verdict"] == "less accurate, more tokens"
    (pair01, pair10) = cvs.seed_against_seed([sep0, sep1])
    assert (pair01["seed"], pair01["against_seed"]) == (0, 1) and pair01["verdicts"] == {
        0.2: "as good or better (fewer tokens)"}
    assert pair10["verdicts"] == {0.2: "more tokens"}


def test_paired_tiers_keep_a_problems_tiers_in_one_rollout(tmp_path):
    from trl.trainer.utils import RepeatSampler

    from frugalthink.rl.tiers import BlockRepeatSampler
    from frugalthink.rl.train import load_recipe
    from frugalthink.tasks.conditioning import training_rows

    assert training_rows(["a", "b", "c"], [0.0, 0.1, 0.4], 0, paired=True)[3:6] == [(1, 0.0), (1, 0.1), (1, 0.4)]
    unpaired = training_rows(["a", "b", "c"], [0.0, 0.4], 0, paired=False)
    assert [i for i, _ in unpaired] == [0, 1, 2] and {a for _, a in unpaired} <= {0.0, 0.4}
    # 6 problems x 3 tiers; rollouts of 6 prompts = 2 whole problems; k = 2 samples each, reused over 2 updates
    sampler = BlockRepeatSampler(RepeatSampler(list(range(18)), mini_repeat_count=2, batch_size=6, repeat_count=2,
                                               seed=5), block=3)
    rows = list(sampler)
    assert len(rows) == len(sampler) == 18 * 2 * 2
    rollouts = [rows[i : i + 24] for i in range(0, len(rows), 24)]
    seen = []
    for r in rollouts:
        prompts = r[::2][:6]
        assert r[::2] == prompts * 2 and r[1::2] == r[::2]  # k samples in a row, the rollout reused as TRL does
        assert sorted(prompts) == sorted(3 * (p // 3) + t for p in prompts[::3] for t in range(3))  # whole blocks
        seen += prompts
    assert sorted(seen) == list(range(18)) and seen != list(range(18))  # every row once, the blocks shuffled
    with pytest.raises(ValueError, match="do not hold whole blocks of 4"):
        BlockRepeatSampler(RepeatSampler(list(range(8)), mini_repeat_count=2, batch_size=6), block=4)
    with pytest.raises(UserError, match=r"paired_tiers: prompts_per_rollout \(6\) must be a multiple"):
        load_recipe("tiny/rl", None, ["alphas=[0.0, 0.1, 0.2, 0.4]", "paired_tiers=true", "prompts_per_rollout=6"])
    # end to end: a rollout of two prompts is one problem at both tiers, so every step logs both tiers (an unpaired
    # draw of two prompts would put both in one tier half the time)
    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)).save_pretrained(
        tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    res = _cli("train", "--recipe", "tiny/rl", "--set", f"model={tmp_path / 'm'}", "--set", "alphas=[0.0, 0.4]",
               "--set", "paired_tiers=true", "--set", "rollouts=5", "--set", "prompts_per_rollout=2", "--set",
               "updates_per_rollout=1", "--set", "max_completion_length=8", "--set", "threads=1", "--out",
               str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    tiers = [{k.split("/")[1] for k in row if k.startswith("tier/")} for row in log if "accuracy" in row]
    assert len(tiers) == 5 and all(t == {"0", "0.4"} for t in tiers), tiers


def test_conditioned_recipes_are_not_run_as_one_alpha_and_efforts_are_trained_tiers(tmp_path):
    from frugalthink.rl.train import load_recipe
    from frugalthink.tasks.conditioning import default_efforts

    with pytest.raises(UserError, match="alpha-conditioned model"):
        load_recipe("tiny/conditioned", 0.2, [])
    with pytest.raises(UserError, match="not among the trained alphas"):
        load_recipe("tiny/conditioned", None, ["alphas=[0.05, 0.1]"])
    assert default_efforts([0.4, 0.05, 0.2, 0.1]) == {"high": 0.05, "medium": 0.1, "low": 0.4}
    res = _cli("sweep", "--recipe", "tiny/conditioned", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "add --conditioned" in res.stderr


def test_tally_conditioned_recipe_is_the_conditioned_recipe_on_tally():
    """tiny/tally/conditioned repeats the conditioned fields of tiny/conditioned on tally's RL recipe: they must
    agree, and everything else must be tally's."""
    from frugalthink.config import load_yaml

    cond, tally_cond, tally_rl = (load_yaml(n) for n in ("tiny/conditioned", "tiny/tally/conditioned", "tiny/tally/rl"))
    own = ("alphas", "efforts", "rollouts", "tier_beta")
    for key in own:
        assert tally_cond[key] == cond[key], key
    assert {k: v for k, v in tally_cond.items() if k not in own} == {k: v for k, v in tally_rl.items() if k not in own}
    # the equal-budget rule: the separate family's rollouts summed over its alphas
    assert tally_cond["rollouts"] == tally_rl["rollouts"] * len(tally_cond["alphas"])
