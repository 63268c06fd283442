"""The one grader: extraction, equivalent forms, reasons, pathological input, and real benchmark data."""

import time

import pytest

from frugalthink.tasks.answers import extract, final_number, last_boxed, normalize
from frugalthink.tasks.grading import MathVerifyPool, grade, grade_many
from frugalthink.tasks.math_benchmarks import gold_from_text, shipped_file
from frugalthink.util.jsonl import iter_jsonl


@pytest.mark.parametrize(
    "pred,gold",
    [
        (r"\frac{1}{2}", "0.5"),
        ("0.5", r"\frac{1}{2}"),
        ("1,000", "1000"),
        ("x = 7", "7"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\dfrac{14}{3}", r"\frac{14}{3}"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"\text{Evelyn}", r"\text{Evelyn}"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
    ],
)
def test_equivalent_forms_are_correct(pred, gold):
    result = grade(f"so the answer is \\boxed{{{pred}}}.", gold)
    assert result.correct, result
    assert result.reason == "correct"


@pytest.mark.parametrize("pred,gold", [("3", "4"), (r"\frac{1}{3}", "0.5"), ("x = 8", "7"), ("1000", "100")])
def test_different_values_are_wrong(pred, gold):
    result = grade(f"\\boxed{{{pred}}}", gold)
    assert not result.correct
    assert result.reason == "mismatch"


def test_reasons():
    assert grade("I have no idea.", "3").reason == "no_answer"
    assert grade(r"\boxed{3}", "3").correct  # the same completion, not truncated, is right
    cut = grade(r"\boxed{3}", "3", truncated=True)
    assert (cut.correct, cut.reason, cut.extracted) == (False, "truncated", "3")


def test_think_tags_grade_only_the_final_part():
    assert extract("<think>\\boxed{4}</think>The answer is \\boxed{3}") == ("3", "ok")
    assert grade("<think>maybe \\boxed{4}</think> \\boxed{3}", "3").correct
    assert not grade("<think>maybe \\boxed{3}</think> \\boxed{4}", "3").correct
    assert grade("<think>still going, \\boxed{3}", "3").reason == "unfinished_thinking"


def test_extraction_rules():
    assert last_boxed(r"\boxed{1} then \boxed{\frac{a}{b}}") == r"\frac{a}{b}"
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_boxed(r"\boxed 5.") == "5"
    assert final_number("blah 3 then #### 1,234") == "1234"
    assert final_number("The answer is 42. Later 7") == "42"
    assert final_number("costs 5 then 12 dollars") == "12"
    assert extract("nothing numeric") == (None, "no_answer")
    assert normalize(r"\left( 1,2 \right)") == "(1,2)"


def test_pathological_completions_time_out_and_the_batch_goes_on():
    nested = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"
    tower = "\\boxed{" + "\\frac{1}{" * 2000 + "3" + "}" * 2000 + "}"
    t0 = time.perf_counter()
    results = grade_many([nested, tower, r"\boxed{2}"], ["2", "2", "2"], timeout_s=2.0)
    elapsed = time.perf_counter() - t0
    assert [r.correct for r in results] == [False, False, True]
    assert results[0].reason in ("timeout", "no_answer", "mismatch")
    assert results[1].reason in ("timeout", "no_answer", "mismatch")
    assert elapsed < 2 * 2.0 + 3  # two slow items on two workers, plus process restarts


def test_grader_works_from_a_thread():
    import threading

    out = {}

    def work():
        out["r"] = grade(r"\boxed{0.5}", r"\frac{1}{2}")

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert out["r"].correct


def test_pool_kills_a_hung_item():
    pool = MathVerifyPool(workers=1, timeout_s=1.0)
    try:
        slow = "\\frac{1}{" * 3000 + "3" + "}" * 3000
        verdicts = pool.compare([("2", slow), ("2", "2")])
        assert verdicts[1] == "correct"
        assert verdicts[0] in ("timeout", "no_answer", "mismatch")
    finally:
        pool.close()


def test_bad_inputs_to_grade_many():
    with pytest.raises(ValueError, match="2 completions but 1"):
        grade_many(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="unknown grading kind"):
        grade_many(["a"], ["1"], kind="fuzzy")


def _rows(name):
    return [r for _, r in iter_jsonl(shipped_file(name))]


def test_real_benchmarks_reference_solutions_grade_correct():
    math500 = _rows("math500")
    res = grade_many([r["solution"] for r in math500], [r["answer"] for r in math500])
    assert sum(r.correct for r in res) / len(res) >= 0.995
    gsm = _rows("gsm8k")
    res = grade_many([r["answer"] for r in gsm], [gold_from_text(r["answer"]) for r in gsm], number_fallback=True)
    assert sum(r.correct for r in res) / len(res) >= 0.995
    for name in ("aime24", "amc23"):
        rows = _rows(name)
        res = grade_many([f"\\boxed{{{r['answer']}}}" for r in rows], [gold_from_text(r["answer"]) for r in rows])
        assert all(r.correct for r in res), name


def test_real_benchmarks_wrong_answers_grade_wrong():
    from frugalthink.tasks import grader_acceptance as gb

    math500 = _rows("math500")
    golds = [r["answer"] for r in math500]
    wrong = gb.corrupt_answers(golds)
    completions = [gb.replace_final(r["solution"], w) for r, w in zip(math500, wrong, strict=True)]
    assert all(w in c for w, c in zip(wrong, completions, strict=True))
    res = grade_many(completions, golds)
    assert sum(not r.correct for r in res) / len(res) >= 0.99


def test_review_cases_decimals_lists_and_repeated_assignments():
    assert grade(r"so \boxed 3.5.", "3.5").correct and not grade(r"\boxed 3.5", "3").correct
    assert not grade(r"\boxed{1, 100}", "1100").correct  # a list is not a thousands separator
    assert grade(r"\boxed{1,000}", "1000").correct
    assert grade(r"\boxed{x = 3}, that is \boxed{3}", "3").correct  # the same answer, not hedging


def test_pool_workers_die_with_a_killed_parent():
    """A run killed with SIGKILL (OOM, a kill before --resume) must not leave its grading workers behind."""
    import os
    import subprocess
    import sys
    import time

    code = ("import os, signal\nfrom frugalthink.tasks.grading import _pool, grade\n"
            "assert grade('\\\\boxed{\\\\frac{1}{2}}', '0.5').correct\n"  # not equal as text: math-verify's pool"
            "print(' '.join(str(w.proc.pid) for w in _pool()._workers), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in proc.stdout.readline().split()]  # not read to EOF: surviving workers would hold it open
    proc.wait(timeout=120)
    proc.stdout.close()
    assert pids

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for init to reap it is gone too
            return fh.read().split(")")[-1].split()[0] != "Z"

    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    survivors = [p for p in pids if alive(p)]
    for pid in survivors:
        os.kill(pid, 9)
    assert not survivors, pids
