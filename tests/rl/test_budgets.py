"""One model, every tier, by budgets (`frugalthink.rl.budgets`): the per-tier rewards against hand computations, the
recipe's checks, the rows and prompts, the rollout caps inside the trainer, and the tier a request names."""

import json

import pytest

from frugalthink.rl import budgets as B
from frugalthink.rl import rewards as R
from frugalthink.util.errors import UserError


def test_the_per_tier_rewards_by_hand():
    correct, lengths = [True, True, True, False, True], [20, 30, 31, 10, 300]
    budgets = [30, 30, 30, 30, 60]  # four samples of a tier with B = 30, one of the top tier (target 60, no budget)
    top = [False] * 4 + [True]
    # cutoff: inside the budget and correct; the top tier: correctness alone, however long
    assert R.budget_cutoff_rewards(correct, lengths, budgets, top) == [1.0, 1.0, 0.0, 0.0, 1.0]
    # L1-Max per tier, slope 0.05: clip(0.05 (30 - len) + 0.5, 0, 1) -> 1.0, 0.5, 0.45, wrong 0; top 1
    assert R.budget_l1_rewards(correct, lengths, budgets, 0.05, top=top) == pytest.approx([1.0, 0.5, 0.45, 0.0, 1.0])
    # ours inside the budget: the group's in-budget correct lengths are 20 and 30 (mean 25, std 5): z = -1, +1
    groups = ["g", "g", "g", "g", "top"]
    s = 1 / (1 + 2.718281828459045 ** -1)
    assert R.budget_efficiency_rewards(correct, lengths, groups, budgets, 0.2, top) == pytest.approx(
        [1 - 0.2 * (1 - s), 1 - 0.2 * s, 0.0, 0.0, 1.0], abs=1e-6)
    # two-sided: under 0.5 takes half of (1 - len / T) away; 20 of 30 tokens keeps 1 - 0.5/3, the top tier at 300 of
    # its 60-token target keeps all
    assert R.pull_up([1.0, 1.0, 0.0, 0.0, 1.0], lengths, budgets, 0.5) == pytest.approx(
        [1 - 0.5 / 3, 1.0, 0.0, 0.0, 1.0])
    # the registry reads each row's target from targets and its top tier from top
    batch = R.RewardBatch(correct, [20, 30, 31, 10, 30], groups, budgets, alpha=0.2, top=top)
    options = lambda **o: R.resolve_options("budget_cutoff", o, 384)  # noqa: E731
    assert R.REWARDS["budget_cutoff"].compute(batch, options()) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert R.REWARDS["budget_cutoff"].compute(batch, options(under=1.0)) == pytest.approx([2 / 3, 1.0, 0.0, 0.0, 0.5])
    # margin 0.5: the tier's pull aims at 15 tokens, which 20 and 30 both reach; the top tier's target stays L(x)
    assert R.REWARDS["budget_cutoff"].compute(batch, options(under=1.0, margin=0.5)) == pytest.approx(
        [1.0, 1.0, 0.0, 0.0, 0.5])
    # fit 0.9: paid inside 27 of the 30 tokens, so 30 is no longer paid; the top tier has no budget to shrink
    assert R.REWARDS["budget_cutoff"].compute(batch, options(fit=0.9)) == [1.0, 0.0, 0.0, 0.0, 1.0]
    # L1 per tier against 27 tokens, slope 0.05: clip(0.05 (27 - 20) + 0.5) = 0.85, 0.05 (27 - 30) + 0.5 = 0.35
    assert R.REWARDS["budget_l1"].compute(batch, R.resolve_options("budget_l1", {"slope": 0.05, "fit": 0.9}, 384)) \
        == pytest.approx([0.85, 0.35, 0.3, 0.0, 1.0])


def test_budgets_rows_and_lengths():
    assert B.budget(0.4, 100.0, "ratio", 384) == 40
    assert B.budget(0.4, 1.0, "ratio", 384) == 1  # never below one token
    assert B.budget(1.0, 100.0, "ratio", 384) == 100 and B.budget(1.5, 300.0, "ratio", 384) == 384  # at most the cap
    assert B.is_top(1.0, "ratio", 384) and not B.is_top(0.99, "ratio", 384)
    assert B.budget(500, 0.0, "tokens", 384) == 384 and B.is_top(500, "tokens", 384)
    assert B.budget(64, 0.0, "tokens", 384) == 64 and not B.is_top(64, "tokens", 384)
    recs = [{"problem_id": "a", "tokens": t, "correct": c} for t, c in ((40, True), (60, True), (300, False))]
    assert B.lengths_from_records(recs)["a"] == {"length": 50.0, "correct": 2, "samples": 3}
    from types import SimpleNamespace as P

    rows = B.training_rows([P(id="a"), P(id="b")], [1.0, 0.6, 0.4], {"a": {"length": 50.0}, "b": {"length": 100.0}},
                           "ratio", 384, cap_rollouts=False)
    assert [(r["index"], r["tier"], r["target"], r["top"], r["cap"]) for r in rows] == [
        (0, 1.0, 50, True, 0), (0, 0.6, 30, False, 0), (0, 0.4, 20, False, 0), (1, 1.0, 100, True, 0),
        (1, 0.6, 60, False, 0), (1, 0.4, 40, False, 0)]
    capped = B.training_rows([P(id="a")], [1.0, 0.6], {"a": {"length": 50.0}}, "ratio", 384, cap_rollouts=True)
    assert [r["cap"] for r in capped] == [0, 30]  # the top tier runs to the run's cap


def test_base_lengths_files(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "records.jsonl").write_text(json.dumps({"problem_id": 7, "sample": 0, "tokens": 12,
                                                              "correct": True}) + "\n")
    assert B.load_base_lengths(tmp_path / "e") == {"7": {"length": 12.0, "correct": 1, "samples": 1}}
    B.write_base_lengths(tmp_path / "l.json", {"7": {"length": 12.0}}, {"model": "m"})
    assert B.load_base_lengths(tmp_path / "l.json") == {"7": {"length": 12.0}}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="bad.json: not a base_lengths file"):
        B.load_base_lengths(tmp_path / "bad.json")
    with pytest.raises(UserError, match="neither base_lengths.json nor"):
        B.load_base_lengths(tmp_path)


@pytest.mark.parametrize("sets,message", [
    (["reward=budget_cutoff"], "a budget reward needs budget_tiers"),
    (["budget_tiers=[1.0, 0.5]"], "needs a budget reward"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.6, 0.4]"], r"prompts_per_rollout \(16\) must be a multiple"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "budget_efforts={low: 0.3}"], "not among budget_tiers"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "generation_engine=hf"], "cap_rollouts: rollouts stop"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "alphas=[0.0, 0.2]"], "alpha-conditioned training needs reward: efficiency"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 1.0]"], "named twice"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, -0.5]"], "positive number"),
    (["reward=budget_cutoff", "budget_tiers=[384, 40.5]", "budget_unit=tokens"], "whole numbers"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "budget_unit=words"], "budget_unit: unknown"),
    (["base_lengths=x.json"], "for a budget-tier recipe only"),
    (["warm_start=tiny/tally/tiers_warm"], "for a budget-tier recipe only"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "warm_start=w", "base_lengths=x"], "give one"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "reward_options={margin: 1.5}"], "margin must be in"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "reward_options={under: -1}"], "under must be >= 0"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "reward_options={fit: 0}"], "fit must be in"),
    (["reward=budget_cutoff", "budget_tiers=[1.0, 0.5]", "reward_options={under: 1, margin: 0.9, fit: 0.8}"],
     r"margin \(0.9\) above fit \(0.8\)"),
])
def test_recipe_checks(sets, message):
    from frugalthink.rl.train import load_recipe

    with pytest.raises(UserError, match=message):
        load_recipe("tiny/tally/rl", None, ["alpha=0.0", *sets])


def test_the_tally_recipe_and_the_tier_prompts():
    from frugalthink.organisms.tiny import build_tokenizer
    from frugalthink.rl.train import load_recipe
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    recipe = load_recipe("tiny/tally/tiers", None, [])
    assert recipe.budget_tiers == [1.0, 0.6, 0.4] and recipe.reward == "budget_cutoff" and recipe.batch_normalize
    assert recipe.warm_start == "tiny/tally/tiers_warm"
    task = get_task("tally", config={"min_level": 2, "max_level": 3})
    p = task.load("test")[0]
    tok = build_tokenizer()
    plain = build_prompt(tok, task, p)
    assert build_prompt(tok, task, p, ratio=1.0) == plain  # the top tier asks as the base was asked
    assert build_prompt(tok, task, p, ratio=0.6) == plain[:-1] + "!" * 8 + ":"  # the cut, 0.4, in marks of 0.05
    assert build_prompt(tok, task, p, ratio=0.5).count("!") == 10
    with pytest.raises(ValueError, match="one of a length target"):
        build_prompt(tok, task, p, ratio=0.5, alpha=0.2)
    with pytest.raises(UserError, match="budget ratio 0.37: the embedded tasks write a ratio as marks of 0.05"):
        build_prompt(tok, task, p, ratio=0.37)
    assert build_prompt(tok, get_task("math500"), get_task("math500").load("test")[0], ratio=0.6).startswith(
        "budget_ratio=0.6\n")  # a task of text: the control line in front of the message


def _tiny_model_and_caps(tmp_path, monkeypatch) -> list:
    """A random tiny model in ``tmp_path / "m"``; the list that collects the caps the fast engine is handed per round."""
    from tiny_runs import save_tiny_model

    from frugalthink.generation import decoding

    save_tiny_model(tmp_path / "m")
    seen = []
    real = decoding.sample

    def spy(model, prompts, max_new, temperature, eos, pad, **kw):
        seen.append(kw.get("caps"))
        return real(model, prompts, max_new, temperature, eos, pad, **kw)

    monkeypatch.setattr(decoding, "sample", spy)
    return seen


def test_a_tiers_rollouts_stop_at_its_budget_in_the_trainer(tmp_path, monkeypatch):
    """End to end on a random tiny model: L(x) measured and stored with the run, every rollout holding each of its
    problems at both tiers, and the fast engine handed each row's budget as its cap (the top tier none)."""
    from frugalthink.rl.train import load_recipe, train

    seen = _tiny_model_and_caps(tmp_path, monkeypatch)
    recipe = load_recipe("tiny/tally/tiers", None, [f"model={tmp_path / 'm'}", "warm_start=null", "rollouts=2",
                                                    "num_prompts=4",
                                                    "prompts_per_rollout=4", "budget_tiers=[1.0, 0.5]",
                                                    "budget_efforts={}", "base_samples=2", "max_completion_length=24",
                                                    "updates_per_rollout=1", "threads=1", "save_every=1"])
    train(recipe, tmp_path / "run", console=False)
    lengths = json.loads((tmp_path / "run" / "base_lengths.json").read_text())["problems"]
    assert len(lengths) == 4
    caps = [c for c in seen if c is not None]
    assert len(caps) == 2  # one round per rollout (the base-length evaluation hands no caps)
    for rollout in caps:
        assert len(rollout) == 4 * 8 and rollout.count(None) == 2 * 8  # two problems x two tiers x k = 8
        assert all(c is None or 1 <= c <= 12 for c in rollout)  # half of L(x) <= 24 tokens
    expected = {round(0.5 * v["length"]) or 1 for v in lengths.values()}
    assert {c for rollout in caps for c in rollout if c is not None} <= expected
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all({"tier/0.5/over_budget", "tier/1/tokens_mean"} <= set(row) for row in log if "accuracy" in row)


def test_the_tier_a_request_names(tmp_path, capsys):
    from frugalthink.eval.evaluate import prompt_control

    model = tmp_path / "m"
    model.mkdir()
    cfg = {"budget_tiers": [1.0, 0.6, 0.4], "budget_unit": "ratio", "budget_efforts": {}, "max_completion_length": 384}
    (model / "frugalthink_run.json").write_text(json.dumps({"config": cfg}))
    assert prompt_control(str(model), None, "low", None, None)["ratio"] == 0.4
    assert prompt_control(str(model), None, "high", None, None)["ratio"] == 1.0
    assert prompt_control(str(model), None, None, 0.5, None) == {"alpha": None, "ratio": 0.5, "length_target": None}
    prompt_control(str(model), None, None, 0.2, None)
    assert "below the trained ratios" in capsys.readouterr().err
    with pytest.raises(UserError, match="--effort 'huge': the model knows high, low, medium"):
        prompt_control(str(model), None, "huge", None, None)
    with pytest.raises(UserError, match="--budget-ratio and --length-target: give one"):
        prompt_control(str(model), None, None, 0.5, 40)
    tokens = {**cfg, "budget_tiers": [384, 64], "budget_unit": "tokens", "budget_efforts": {"high": 384, "low": 64}}
    (model / "frugalthink_run.json").write_text(json.dumps({"config": tokens}))
    assert prompt_control(str(model), None, "low", None, None)["length_target"] == 64
    assert prompt_control(str(model), None, "high", None, None)["length_target"] is None  # at the cap: no budget
    with pytest.raises(UserError, match="not a budget-tier model trained on ratios"):
        prompt_control(str(model), None, None, 0.5, None)


def test_dynamic_sampling_refills_whole_blocks():
    from types import SimpleNamespace

    from frugalthink.peers.dynamic_sampling import DynamicSampling

    rows = [{"problem_id": i // 3, "tier": [1.0, 0.6, 0.4][i % 3]} for i in range(12)]
    trainer = SimpleNamespace(train_dataset=rows, num_generations=2, args=SimpleNamespace(seed=0))
    refill = DynamicSampling(block=3)._refill_inputs(trainer, 6)
    assert len(refill) == 12
    prompts = [r["problem_id"] for r in refill[::2]]
    tiers = [r["tier"] for r in refill[::2]]
    assert prompts[:3] == [prompts[0]] * 3 and prompts[3:] == [prompts[3]] * 3 and prompts[0] != prompts[3]
    assert tiers == [1.0, 0.6, 0.4] * 2


def test_the_warm_start_buckets_own_samples_into_tiers(tmp_path):
    """`frugalthink shortest --method tiers`: each problem's correct samples go to the tiers whose budget they fit
    (the longest that fits; the top tier the one closest to L(x)), each under its tier's prompt; the trained folder
    then starts a budget-tier run."""
    from tiny_runs import save_tiny_model

    from frugalthink.rl.budgets import warm_start_targets

    recs = [{"problem_id": "p", "sample": i, "tokens": n, "correct": ok, "truncated": False}
            for i, (n, ok) in enumerate(((30, True), (50, True), (100, True), (20, False)))]
    # L(x) = mean of 30, 50, 100 = 60: the top tier takes 50 (closest to 60), 0.9 (B = 54) 50, 0.6 (B = 36) 30,
    # 0.4 (B = 24) none -- the wrong 20-token sample never counts
    assert [(t, r["tokens"]) for _, t, r in warm_start_targets(recs, [1.0, 0.9, 0.6, 0.4], "ratio", 384)] == [
        (1.0, 50), (0.9, 50), (0.6, 30)]
    from frugalthink.rl.shortest import load_shortest_recipe, train_shortest

    save_tiny_model(tmp_path / "m")
    recipe = load_shortest_recipe("tiny/tally/tiers_warm", ["num_prompts=3", "samples=2", "max_new_tokens=16",
                                                            "epochs=1", "threads=1"], str(tmp_path / "m"), None)
    with pytest.raises(UserError, match="no usable targets"):  # a random model answers nothing right
        train_shortest(recipe, tmp_path / "none", console=False)
    from frugalthink.rl import shortest
    from frugalthink.tasks import get_task

    problems = get_task("tally", config={"min_level": 2, "max_level": 8}).load("train")[:3]
    pool = [{"problem_id": p.id, "sample": s, "tokens": n, "correct": True, "truncated": False,
             "completion": "x" * n} for p in problems for s, n in enumerate((4, 12))]
    seen = []
    import frugalthink.tasks.prompts as prompts  # the one prompt path, imported where it is used

    build = prompts.build_prompt

    def spy(tok, task, problem, **kw):
        seen.append(kw.get("ratio"))
        return build(tok, task, problem, **kw)

    original = shortest.sample_pool
    try:
        shortest.sample_pool = lambda recipe, pool_dir, quiet=False: pool
        prompts.build_prompt = spy
        summary = train_shortest(recipe, tmp_path / "w", console=False)
    finally:
        shortest.sample_pool, prompts.build_prompt = original, build
    # L(x) = 8 for each problem: the top tier the 4-token sample (a tie with 12 at distance 4, the lower sample wins),
    # 0.6 (B = 5) the 4-token sample, 0.4 (B = 3) none
    assert summary["method"] == "tiers" and summary["examples"] == 3 * 2 and summary["target_mean_tokens"] == 4.0
    assert sorted(x for x in seen if x is not None) == [0.6, 0.6, 0.6, 1.0, 1.0, 1.0]
    assert (tmp_path / "w" / "model.safetensors").exists()
    with pytest.raises(UserError, match="method tiers: name the budget tiers"):
        load_shortest_recipe("tiny/tally/tiers_warm", ["tiers=[]"], None, None).validate()


def test_a_recipes_warm_start_runs_once_and_the_run_starts_from_it(tmp_path, monkeypatch):
    from frugalthink.rl import shortest
    from frugalthink.rl.train import load_recipe

    calls = []
    monkeypatch.setattr(shortest, "train_shortest", lambda recipe, out, console=True: calls.append((recipe, out)))
    recipe = load_recipe("tiny/tally/tiers", None, [])
    started = B.warm_start(recipe, tmp_path / "warm", console=False)
    (warm, out), = calls
    assert warm.method == "tiers" and warm.tiers == recipe.budget_tiers and warm.model == recipe.model
    assert out == tmp_path / "warm" and started.model == str(tmp_path / "warm")
    assert started.base_lengths == str(tmp_path / "warm" / "pool") and started.warm_start is None
    with pytest.raises(UserError, match="its tiers .* are not the recipe's"):
        B.warm_start(load_recipe("tiny/tally/tiers", None, ["budget_tiers=[1.0, 0.5]", "budget_efforts={}"]),
                     tmp_path / "w2")


def test_token_tiers_need_no_base_lengths_and_cap_at_their_budgets(tmp_path, monkeypatch):
    from frugalthink.rl.train import load_recipe, train

    seen = _tiny_model_and_caps(tmp_path, monkeypatch)
    recipe = load_recipe("tiny/tally/tiers", None, [f"model={tmp_path / 'm'}", "warm_start=null", "rollouts=1",
                                                    "budget_unit=tokens", "budget_tiers=[24, 6, 3]",
                                                    "budget_efforts={}", "num_prompts=2", "prompts_per_rollout=6",
                                                    "max_completion_length=24", "updates_per_rollout=1", "threads=1"])
    train(recipe, tmp_path / "run", console=False)
    assert not (tmp_path / "run" / "base_lengths.json").exists()
    (caps,) = seen  # no base-length evaluation: the one rollout's round only
    assert sorted(set(caps), key=str) == [3, 6, None]  # the top tier (at the cap) runs to the cap
