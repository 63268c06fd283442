"""No command deletes or overwrites what it did not create: a non-empty folder that is not ours is refused."""

import pytest

from frugalthink.cli import main

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _user_folder(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    (d / "train_log.jsonl").write_text('{"mine": 1}\n')
    return d


@pytest.mark.parametrize("argv", [
    ["base", "--out", "{d}"],
    ["train", "--recipe", str(ROOT / "recipes/tiny/rl.yaml"), "--out", "{d}"],
    ["eval", "--model", "no/such/model", "--task", "chain", "--out", "{d}"],
    ["shortest", "--method", "sft", "--model", "no/such/model", "--out", "{d}"],
])
def test_commands_refuse_a_users_folder_and_touch_nothing(tmp_path, capsys, argv):
    d = _user_folder(tmp_path)
    before = {p.name: p.read_text() for p in d.iterdir()}
    assert main([a.replace("{d}", str(d)) for a in argv]) == 2
    assert "not empty" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in d.iterdir()} == before


def test_an_interrupted_base_build_of_ours_is_taken_up(tmp_path):
    from frugalthink.util.outdir import claim

    d = tmp_path / "run"
    claim(d, "frugalthink_base.json")
    (d / "frugalthink_base.json").write_text("{}")
    (d / "model.safetensors").write_text("partial")
    assert claim(d, "frugalthink_base.json") == d  # ours: accepted, nothing deleted
    assert (d / "model.safetensors").exists()
