"""frugalthink.organisms.tally_probe: forced heads, scoring of copies and sums, on a scripted model and on a real tiny one."""

import re

import pytest

from frugalthink.organisms import tally_probe as probe_tally
from frugalthink.organisms.tiny import build_model, build_tokenizer
from frugalthink.tasks import get_task
from frugalthink.tasks.tally import residue


def scripted(error: int, modulus: int = 0, answer_mod: int = 0):
    """A stand-in for the model: after a forced head it writes the copied total and the sum (plus ``error``), reduced
    mod ``modulus``; it boxes the last total mod ``answer_mod``."""
    def cont(model, tokenizer, prompts, prefixes, stop, temperature, max_new):
        out = []
        for q, prefix in zip(prompts, prefixes, strict=True):
            digits = "".join(q[1:-1:2])
            if prefix.endswith("\\boxed{"):
                total = re.findall(r"=(\d+)", prefix)
                out.append(f"{residue(int(total[-1]), answer_mod)}}}")
                continue
            done = re.findall(r"=(\d+)", prefix)
            total = int(done[-1]) if done else int(digits[0])
            head = prefix.rsplit("+", 1)[0].split(">")[-1]
            last_step = re.findall(r"[A-Z]\d", head.split("=")[-1] if "=" in head else head)
            new = residue(total + sum(int(x[1]) for x in last_step) + error, modulus)
            out.append(f"{total}={new} hmm,")
        return out
    return cont


@pytest.mark.parametrize("modulus, answer_mod", [(0, 0), (10, 0), (0, 10)])
@pytest.mark.parametrize("error, accuracy", [(0, 1.0), (1, 0.0)])
def test_scores_copies_sums_and_answers(monkeypatch, error, accuracy, modulus, answer_mod):
    monkeypatch.setattr(probe_tally, "_continue", scripted(error, modulus, answer_mod))
    task = get_task("tally", config={"modulus": modulus, "answer_mod": answer_mod})
    problems = [p for p in task.load("validation") if p.level == 5][:4]
    recs = probe_tally.probe(None, build_tokenizer(), problems, fold=2, temperature=0.6, seed=0, modulus=modulus,
                             answer_mod=answer_mod)
    assert [len(r["steps"]) for r in recs] == [3] * 4 and [s["fold"] for s in recs[0]["steps"]] == [2, 2, 1]
    rows = probe_tally.summarize(recs)
    assert rows[0]["accuracy"] == accuracy and rows[0]["arith_per_step"] == 1.0 - error
    assert rows[0]["copy_per_step"] == 1.0  # the scripted model copies its own previous result
    assert rows[0]["clean_tokens"] < rows[0]["mean_tokens"]
    assert all(r["completion"].count("</think>") == 1 for r in recs)


def test_runs_on_a_real_tiny_model():
    tok = build_tokenizer()
    model = build_model(tok).eval()
    problems = [p for p in get_task("tally").load("validation") if p.level == 3][:3]
    recs = probe_tally.probe(model, tok, problems, fold=3, temperature=1.0, seed=0)
    assert len(recs) == 3 and all(len(r["steps"]) == 1 and r["completion"].startswith("<think>B") for r in recs)


def test_task_settings_follow_the_base(tmp_path):
    import json

    assert probe_tally.task_settings(str(tmp_path), None, None) == (0, 10)  # no base file: TallyConfig's defaults
    (tmp_path / "frugalthink_base.json").write_text(json.dumps({"config": {"tally": {"modulus": 0}}}))
    assert probe_tally.task_settings(str(tmp_path), None, None) == (0, 0)  # built before answer_mod: plain totals
    (tmp_path / "frugalthink_base.json").write_text(json.dumps({"config": {"tally": {"modulus": 10,
                                                                                     "answer_mod": 7}}}))
    assert probe_tally.task_settings(str(tmp_path), None, None) == (10, 7)
    assert probe_tally.task_settings(str(tmp_path), 0, 10) == (0, 10)  # given values win
