"""`frugalthink merge`: the weight-interpolation dial between two models, checked tensor by tensor."""

import json

import pytest
import torch

from frugalthink.cli import main
from frugalthink.generation.merge import interpolate
from frugalthink.util.errors import UserError


def _two_models(tmp_path):
    from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    cfg = TinyModelConfig(hidden_size=16, layers=1, heads=2, intermediate_size=32)
    for name, seed in (("a", 1), ("b", 2)):
        build_model(tok, cfg, seed=seed).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    return tmp_path / "a", tmp_path / "b"


def test_merge_is_the_weighted_mean_of_every_tensor(tmp_path):
    from transformers import AutoModelForCausalLM

    a, b = _two_models(tmp_path)
    assert main(["merge", "--base", str(a), "--other", str(b), "--t", "0.25", "--out", str(tmp_path / "m")]) == 0
    sa, sb, sm = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (a, b, tmp_path / "m"))
    assert set(sm) == set(sa)
    differ = 0
    for name in sa:
        assert torch.allclose(sm[name], 0.75 * sa[name] + 0.25 * sb[name], atol=1e-6), name
        differ += not torch.equal(sa[name], sb[name])
    assert differ > 3  # the two models are not the same
    assert json.loads((tmp_path / "m" / "frugalthink_merge.json").read_text())["t"] == 0.25
    assert (tmp_path / "m" / "tokenizer.json").exists()
    main(["merge", "--base", str(a), "--other", str(b), "--t", "0", "--out", str(tmp_path / "zero")])
    s0 = AutoModelForCausalLM.from_pretrained(tmp_path / "zero").state_dict()
    assert all(torch.equal(s0[n], sa[n]) for n in sa)


def test_merge_refuses_what_it_cannot_do(tmp_path, capsys):
    with pytest.raises(UserError, match="differ in their weights: w2"):
        interpolate({"w": torch.zeros(2)}, {"w": torch.zeros(2), "w2": torch.zeros(1)}, 0.5)
    with pytest.raises(UserError, match=r"differ in w: shape \(2,\) vs \(3,\)"):
        interpolate({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5)
    a, b = _two_models(tmp_path)
    assert main(["merge", "--base", str(a), "--other", str(b), "--t", "1.5", "--out", str(tmp_path / "m")]) == 2
    assert "--t must be in [0, 1]" in capsys.readouterr().err and not (tmp_path / "m").exists()
    assert main(["merge", "--base", str(a), "--other", str(b), "--t", "0.5", "--out", str(a)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
