"""`frugalthink eval` on a tiny random model: resume after a crash, same seed -> same records, truncation."""

import json

import pytest

from frugalthink.eval.evaluate import EvalSettings, evaluate
from frugalthink.generation.backends import HFGenerator
from frugalthink.organisms.tiny import TinyModelConfig, build_model, build_tokenizer
from frugalthink.util.errors import UserError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer()
    build_model(tok, TinyModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def settings(model_dir, **kw):
    base = dict(model=model_dir, task="chain", samples=2, temperature=1.0, max_new_tokens=12, limit=10,
                batch_size=4, latency_requests=2, task_options={"config": {"min_level": 2, "max_level": 3}})
    return EvalSettings(**{**base, **kw})


def records(d):
    return [json.loads(x) for x in (d / "records.jsonl").read_text().splitlines()]


class Crash(Exception):
    pass


class CrashingGenerator:
    """Wraps a generator and raises on the n-th batch, like a kill in the middle of a run."""

    def __init__(self, inner, crash_at):
        self.inner, self.crash_at, self.calls = inner, crash_at, 0
        self.tokenizer = inner.tokenizer

    def generate(self, *a, **k):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash()
        return self.inner.generate(*a, **k)

    def timed(self, *a, **k):
        return self.inner.timed(*a, **k)


def test_resume_after_crash_gives_the_same_records(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    full = evaluate(settings(model_dir), tmp_path / "full", generator=gen, quiet=True)
    with pytest.raises(Crash):
        evaluate(settings(model_dir), tmp_path / "crash", generator=CrashingGenerator(gen, 3), quiet=True)
    assert len(records(tmp_path / "crash")) == 8  # two finished batches of 4 survived the crash
    resumed = evaluate(settings(model_dir), tmp_path / "crash", generator=gen, quiet=True)
    strip = lambda rs: sorted((r["problem_id"], r["sample"], r["completion"], r["tokens"]) for r in rs)  # noqa: E731
    assert strip(records(tmp_path / "crash")) == strip(records(tmp_path / "full"))
    assert resumed["accuracy"] == full["accuracy"] and resumed["n_records"] == 20


def test_same_seed_same_records_and_other_seed_differs(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    evaluate(settings(model_dir, latency_requests=0), tmp_path / "a", generator=gen, quiet=True)
    evaluate(settings(model_dir, latency_requests=0), tmp_path / "b", generator=gen, quiet=True)
    evaluate(settings(model_dir, latency_requests=0, seed=5), tmp_path / "c", generator=gen, quiet=True)
    comp = lambda d: [r["completion"] for r in records(d)]  # noqa: E731
    assert comp(tmp_path / "a") == comp(tmp_path / "b")
    assert comp(tmp_path / "a") != comp(tmp_path / "c")


def test_truncation_and_token_accounting(model_dir, tmp_path):
    s = evaluate(settings(model_dir, max_new_tokens=3, latency_requests=0), tmp_path / "t",
                 generator=HFGenerator(model_dir, device="cpu"), quiet=True)
    for r in records(tmp_path / "t"):
        assert 1 <= r["tokens"] <= 3
        if r["truncated"]:
            assert r["tokens"] == 3 and not r["correct"] and r["reason"] == "truncated"
    assert s["truncation_rate"] > 0
    assert "oracle_mean_tokens" in s and set(s["by_level"]) == {"2"}  # --limit takes the first (level-2) problems


def test_resume_with_other_settings_is_refused(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    evaluate(settings(model_dir, latency_requests=0), tmp_path / "x", generator=gen, quiet=True)
    with pytest.raises(UserError, match="temperature"):
        evaluate(settings(model_dir, latency_requests=0, temperature=0.6), tmp_path / "x", generator=gen, quiet=True)


def test_bad_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="could not load a tokenizer"):
        HFGenerator(str(tmp_path), device="cpu")


def test_resume_survives_a_torn_last_record(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    s = settings(model_dir, latency_requests=0)
    with pytest.raises(Crash):
        evaluate(s, tmp_path / "torn", generator=CrashingGenerator(gen, 3), quiet=True)
    path = tmp_path / "torn" / "records.jsonl"
    path.write_bytes(path.read_bytes()[:-40])  # a kill in the middle of writing the last record
    evaluate(s, tmp_path / "torn", generator=gen, quiet=True)  # resumes: the torn record is generated again
    evaluate(s, tmp_path / "torn", generator=gen, quiet=True)  # and the file stays readable for good
    evaluate(s, tmp_path / "full", generator=gen, quiet=True)
    key = lambda rs: sorted((r["problem_id"], r["sample"], r["completion"]) for r in rs)  # noqa: E731
    assert key(records(tmp_path / "torn")) == key(records(tmp_path / "full"))


def test_a_failed_start_does_not_block_the_corrected_run(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    with pytest.raises(UserError, match="no such file"):
        evaluate(settings(model_dir, task="jsonl:/no/such.jsonl", task_options=None), tmp_path / "e",
                 generator=gen, quiet=True)
    evaluate(settings(model_dir, latency_requests=0), tmp_path / "e", generator=gen, quiet=True)
    assert len(records(tmp_path / "e")) == 20


def test_an_evaluation_can_be_extended_but_not_shrunk(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    evaluate(settings(model_dir, latency_requests=0, limit=2), tmp_path / "x", generator=gen, quiet=True)
    first = records(tmp_path / "x")
    summary = evaluate(settings(model_dir, latency_requests=0, limit=4), tmp_path / "x", generator=gen, quiet=True)
    assert summary["n_records"] == 8 and records(tmp_path / "x")[: len(first)] == first
    with pytest.raises(UserError, match="limit can only grow"):
        evaluate(settings(model_dir, latency_requests=0, limit=3), tmp_path / "x", generator=gen, quiet=True)
    with pytest.raises(UserError, match="backend"):
        evaluate(settings(model_dir, latency_requests=0, limit=4, backend="vllm"), tmp_path / "x", generator=gen,
                 quiet=True)


def test_a_prompt_longer_than_the_context_is_an_error_not_a_hang(model_dir, tmp_path):
    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps({"problem": "7" * 1_000_000, "answer": "7"}) + "\n")
    gen = HFGenerator(model_dir, device="cpu")
    with pytest.raises(UserError, match="problem 0: prompt of 1,000,0.. characters cannot fit"):
        evaluate(settings(model_dir, task=f"jsonl:{data}", task_options=None), tmp_path / "big", generator=gen,
                 quiet=True)


def test_records_with_unicode_line_separators_stay_readable(tmp_path):
    from frugalthink.util.jsonl import append_jsonl, read_jsonl_tolerant

    path = tmp_path / "r.jsonl"
    rows = [{"completion": "a\u2028b\u2029c\x85d"}, {"completion": "e"}]
    append_jsonl(path, rows)
    assert read_jsonl_tolerant(path) == rows
    path.write_bytes(path.read_bytes()[:-1])  # a complete last record that lost its newline is kept, not cut
    append_jsonl(path, [{"completion": "f"}])
    assert [r["completion"] for r in read_jsonl_tolerant(path)] == ["a\u2028b\u2029c\x85d", "e", "f"]


def test_extending_samples_generates_only_the_new_ones(model_dir, tmp_path):
    gen = HFGenerator(model_dir, device="cpu")
    calls = []

    class Counting:
        tokenizer = gen.tokenizer

        def generate(self, prompts, *a, **k):
            calls.append(len(prompts))
            return gen.generate(prompts, *a, **k)

        def timed(self, *a, **k):
            return gen.timed(*a, **k)

    evaluate(settings(model_dir, latency_requests=0, samples=1), tmp_path / "x", generator=Counting(), quiet=True)
    before = sum(calls)
    evaluate(settings(model_dir, latency_requests=0, samples=2), tmp_path / "x", generator=Counting(), quiet=True)
    assert before == 10 and sum(calls) - before == 10  # 10 new samples generated, none of the old 10 again
    assert len(records(tmp_path / "x")) == 20
