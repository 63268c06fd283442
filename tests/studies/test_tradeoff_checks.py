"""frugalthink check (studies/tradeoff.py) and organisms/anatomy.py on hand-made records: each criterion can pass and fail."""

import json
from pathlib import Path

import pytest

from frugalthink.organisms import anatomy as anatomy_mod
from frugalthink.studies import tradeoff as checks_mod

ROOT = Path(__file__).resolve().parents[2]




def _eval(path: Path, tokens_by_level: dict, wrong_at: dict | None = None, fine: dict | None = None) -> str:
    path.mkdir(parents=True)
    rows = []
    for level, tokens in tokens_by_level.items():
        for i in range(40):
            wrong = i < (wrong_at or {}).get(level, 0)
            rows.append({"problem_id": f"{level}-{i}", "sample": 0, "level": level, "tokens": tokens + i % 3,
                         "correct": not wrong, "completion": "", "oracle_tokens": (fine or FINE)[level]})
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


FINE = {2: 20, 5: 50, 8: 80}


def _family(tmp_path, members: dict) -> Path:
    base = _eval(tmp_path / "base", {2: 50, 5: 100, 8: 200})
    fam = {"base": {"eval_dir": base}, "members": [
        {"alpha": a, "seed": 0, "eval_dir": _eval(tmp_path / f"a{a}", *spec)} for a, spec in members.items()]}
    (tmp_path / "family.json").write_text(json.dumps(fam))
    return tmp_path


def test_a_real_trade_off_passes(tmp_path):
    fam = _family(tmp_path, {
        0.0: ({2: 50, 5: 98, 8: 205},),
        0.1: ({2: 30, 5: 80, 8: 190},),
        0.2: ({2: 15, 5: 60, 8: 180}, {8: 12}),   # adaptive: cuts 70% at level 2, 10% at level 8
        0.4: ({2: 12, 5: 40, 8: 120}, {8: 25}),
    })
    res = checks_mod.checks(fam)
    assert all(c["pass"] for c in res["checks"]), res["checks"]


def test_hardest_level_against_the_control_beside_the_base(tmp_path):
    fam = _family(tmp_path, {
        0.0: ({2: 50, 5: 98, 8: 205}, {8: 10}),   # the control itself wrong on problems 0-9 at level 8
        0.4: ({2: 12, 5: 40, 8: 120}, {8: 25}),   # wrong on 0-24
    })
    rows = {r["model"]: r for r in checks_mod.checks(fam)["table"]}
    vs_base, vs_control = (rows["alpha=0.4"][f"mcnemar_hard_vs_{k}"] for k in ("base", "alpha0"))
    assert (vs_base["a_only"], vs_base["b_only"]) == (25, 0)        # the base is right on all 40
    assert (vs_control["a_only"], vs_control["b_only"]) == (15, 0)  # only 10-24 separate it from the control
    assert vs_control["p"] == pytest.approx(2 * 0.5 ** 15)
    assert "mcnemar_hard_vs_alpha0" not in rows["base"]
    alone = _family(tmp_path / "no-control", {0.4: ({2: 12, 5: 40, 8: 120}, {8: 25})})
    assert "mcnemar_hard_vs_alpha0" not in checks_mod.checks(alone)["table"][1]


def test_a_staircase_to_a_floor_fails(tmp_path):
    fam = _family(tmp_path, {
        0.0: ({2: 30, 5: 60, 8: 120},),           # the control cuts 40%
        0.2: ({2: 20, 5: 40, 8: 80},),
        0.4: ({2: 20, 5: 40, 8: 80},),            # same point as 0.2
    })
    verdict = {c["check"].split(":")[0]: c["pass"] for c in checks_mod.checks(fam)["checks"]}
    assert verdict["alpha = 0 cuts at most 15% of tokens"] is False
    assert verdict["alpha 0.2 vs 0.4"] is False
    assert not any(v for k, v in verdict.items() if k.startswith("from some alpha"))
    assert not any(v for k, v in verdict.items() if k.startswith("alpha = 0.2 is adaptive"))


def test_tokens_over_the_fine_trace_are_reported(tmp_path, capsys):
    fam = _family(tmp_path, {0.2: ({2: 15, 5: 48, 8: 80},)})
    row = checks_mod.checks(fam)["table"][1]
    assert row["tokens_over_fine_by_level"] == pytest.approx({2: 15.975 / 20, 5: 48.975 / 50, 8: 80.975 / 80})  # tokens + i % 3
    from frugalthink.cli import main

    main(["check", str(fam)])
    assert "tokens / fine trace by level" in capsys.readouterr().out


def test_the_old_script_spelling_still_works_with_a_note(tmp_path):
    import subprocess
    import sys

    fam = _family(tmp_path, {0.2: ({2: 15, 5: 48, 8: 80},)})
    old = subprocess.run([sys.executable, str(ROOT / "scripts" / "tradeoff_checks.py"), str(fam)],
                         capture_output=True, text=True, timeout=120)
    new = subprocess.run([sys.executable, "-m", "frugalthink.cli", "check", str(fam)], capture_output=True, text=True,
                         timeout=120)
    assert old.stderr.strip() == "note: scripts/tradeoff_checks.py is now `frugalthink check`"
    assert old.stdout == new.stdout and "tokens / fine trace by level" in old.stdout
    assert old.returncode == new.returncode


def test_members_of_one_seed(tmp_path):
    fam = _family(tmp_path, {0.2: ({2: 15, 5: 48, 8: 80},)})
    data = json.loads((fam / "family.json").read_text())
    data["members"].append({**data["members"][0], "alpha": 0.4, "seed": 1})
    (fam / "family.json").write_text(json.dumps(data))
    assert checks_mod.checks(fam)["members"] == [0.2]
    assert checks_mod.checks(fam, seed=1)["members"] == [0.4]
    from frugalthink.util.errors import UserError

    with pytest.raises(UserError, match="no member trained with seed 2"):
        checks_mod.checks(fam, seed=2)


@pytest.mark.parametrize("values, rho", [([1, 2, 3, 4], 1.0), ([4, 3, 2, 1], -1.0), ([1, 1, 2, 2], 0.894)])
def test_spearman_by_hand(values, rho):
    assert checks_mod.spearman(values) == pytest.approx(rho, abs=1e-3)


def test_anatomy_counts_folds_checks_and_hesitation():
    recs = [{"level": 3, "tokens": 30, "correct": True,
             "completion": "<think>B5+3=8(3+5=8) wait,C8D1+8=17 hmm, let me re-check.</think>\\boxed{17}"},
            {"level": 3, "tokens": 20, "correct": False, "completion": "<think>B5C8D1+3=16</think>\\boxed{16}"}]
    (row,) = anatomy_mod.anatomy(recs)
    assert row["digits_per_step"] == 2.0 and row["coarse_share"] == 1.0  # 6 digits in 3 written steps
    assert row["fold3_share"] == 0.5 and row["checks"] == 0.5 and row["hesitations"] == 1.0
    assert row["acc_coarse"] == 0.5 and row["acc_fine"] is None
