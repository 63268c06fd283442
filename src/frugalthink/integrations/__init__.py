"""The paper's reward (and every reward of `frugalthink.rl.rewards.REWARDS`) inside other trainers.

* `frugalthink.integrations.trl.FrugalReward`: a reward function for TRL's ``GRPOTrainer``.
* `frugalthink.integrations.verl`: a reward manager and an advantage estimator for verl 0.9.x (imports verl only
  when used; verl lives in a venv of its own, ``make test-verl``).

Both grade with the project's one grader and hand the grades to `frugalthink.rl.reward_fn.LengthReward`, the reward callable
of our own trainer; docs/integrations.md says what each checks.
"""
