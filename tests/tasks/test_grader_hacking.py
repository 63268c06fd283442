"""A grader that cannot be gamed: shortcuts a length-penalised policy would find are wrong, R1-style answers right.

The same verdicts from the three places that grade: the RL reward, evaluation (task.grade) and `frugalthink grade`.
"""

import json

import pytest

from frugalthink.cli import main
from frugalthink.rl.reward_fn import LengthReward
from frugalthink.tasks import get_task
from frugalthink.tasks.base import Problem
from frugalthink.tasks.grading import grade, grade_many
from frugalthink.tasks.prompts import opens_thinking

OPEN = "<｜User｜>What is 1+2?<｜Assistant｜><think>\n"  # a template that opens thinking for the model
CLOSED = "<｜User｜>What is 1+2?<｜Assistant｜>"

# (completion, prompt, reason) -- every one wrong for gold "3".
HACKS = [
    (r"</think>So we get x^2+3", CLOSED, "no_answer"),                      # last number of an expression
    (r"</think>The answer is 3", CLOSED, "no_answer"),                      # unboxed, on a boxed task
    (r"3", CLOSED, "no_answer"),                                           # bare number
    (r"#### 3", CLOSED, "no_answer"),                                      # GSM8K marker on a math task
    (r"still thinking, maybe \boxed{3}", OPEN, "unfinished_thinking"),     # answer inside open thinking
    (r"<think>maybe \boxed{3}", CLOSED, "unfinished_thinking"),            # opened in the completion, never closed
    (r"<think>\boxed{3}</think>", CLOSED, "no_answer"),                    # boxed only inside thinking
    (r"<think>\boxed{3}</think>done.", CLOSED, "no_answer"),
    (r"\boxed{3}", OPEN, "unfinished_thinking"),                          # the prompt's <think> never closed
    (r"</think>\boxed{}", CLOSED, "empty_box"),
    (r"</think>\boxed{ }", CLOSED, "empty_box"),
    (r"</think>\boxed{3} or \boxed{4}", CLOSED, "hedging"),
    (r"</think>\boxed{4}, no wait \boxed{3}", CLOSED, "hedging"),
    (r"</think>\boxed{3}\boxed{5}\boxed{7}", CLOSED, "hedging"),
    (r"</think>\fbox{2} \boxed{3}", CLOSED, "hedging"),
    (r"</think>either \boxed{1}, \boxed{2} or \boxed{3}", CLOSED, "hedging"),
    (r"</think>\boxed{3", CLOSED, "no_answer"),                            # unclosed box
    (r"</think>\boxed{3}, and also \boxed{", CLOSED, "no_answer"),
    (r"</think>\boxed{4}", CLOSED, "mismatch"),
    (r"</think>", CLOSED, "no_answer"),                                    # nothing after thinking
    (r"</think>\boxed{3}</think>", OPEN, "no_answer"),                     # box before the last </think>
    (r"<think>a</think>b<think>\boxed{3}", CLOSED, "unfinished_thinking"),  # re-opened after closing
]

# R1's way of answering, and plain answers without thinking: all right.
CONTROLS = [
    ("<think>\n1+2=3.\n</think>\n\n**Final Answer**\n\\[\n\\boxed{3}\n\\]", CLOSED),
    ("1+2=3.\n</think>\n\n**Final Answer**\n\\[\n\\boxed{3}\n\\]", OPEN),
    ("1+2=3 so \\boxed{3}.\n</think>\nThe sum is 3, so the answer is $\\boxed{3}$.", OPEN),
    ("<think>hmm \\boxed{4}? no.</think>\\boxed{3}", CLOSED),
    ("\\boxed{3}", CLOSED),
    ("</think>The answer is \\boxed{3} (that is, \\boxed{3}).", CLOSED),
    ("</think>\\boxed{\\frac{6}{2}}", CLOSED),
]


def test_enough_distinct_hacks():
    assert len(HACKS) >= 20 and len({h[0] for h in HACKS}) == len(HACKS)


@pytest.mark.parametrize("completion,prompt,reason", HACKS)
def test_each_hack_is_wrong_with_its_reason(completion, prompt, reason):
    result = grade(completion, "3", thinking_open=opens_thinking(prompt))
    assert (result.correct, result.reason) == (False, reason)


@pytest.mark.parametrize("completion,prompt", CONTROLS)
def test_r1_style_answers_are_right(completion, prompt):
    assert grade(completion, "3", thinking_open=opens_thinking(prompt)).correct


def test_number_fallback_only_where_declared():
    assert not grade("#### 3", "3").correct
    assert grade("#### 3", "3", number_fallback=True).correct
    gsm, math = get_task("gsm8k"), get_task("math500")
    p = [Problem("x", "", "3")]
    assert gsm.grade(["so 3 apples"], p)[0].correct and not math.grade(["so 3 apples"], p)[0].correct


def test_reward_evaluation_and_grade_command_agree(tmp_path):
    cases = HACKS + [(c, p, "correct") for c, p in CONTROLS]
    comps, prompts = [c for c, _, _ in cases], [p for _, p, _ in cases]
    task = get_task("math500")
    problems = [Problem(str(i), "", "3") for i in range(len(cases))]
    evaluation = [g.correct for g in task.grade(comps, problems, thinking_open=[opens_thinking(p) for p in prompts])]
    assert evaluation == [r == "correct" for _, _, r in cases]
    # The reward, with groups of one completion per prompt position (k=1 is enough for the verdicts).
    reward = LengthReward(task, 0.0, {1}, num_generations=1)
    rewards = reward(prompts=prompts, completions=comps, completion_ids=[[5, 1]] * len(cases),
                     answer=["3"] * len(cases), problem_id=[str(i) for i in range(len(cases))])
    assert [r > 0 for r in rewards] == evaluation
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"prompt": p, "completion": c, "answer": "3"}) + "\n" for c, p in zip(comps, prompts)))
    assert main(["grade", "--in", str(inp), "--out", str(out)]) == 0
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == evaluation


def test_grade_many_keeps_every_reason():
    res = grade_many([c for c, _, _ in HACKS], ["3"] * len(HACKS),
                     thinking_open=[opens_thinking(p) for _, p, _ in HACKS])
    assert [r.reason for r in res] == [r for _, _, r in HACKS]
