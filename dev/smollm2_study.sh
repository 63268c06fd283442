#!/usr/bin/env bash
# The SmolLM2-135M study of docs/smollm2.md, end to end (about 45 minutes on 2 CPU cores); run from the repository
# root. SEEDS="0 1" trains and evaluates each alpha once per training seed; the baselines are evaluated once.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE   # two jobs share the two cores: OpenMP's spin-waiting would slow both many times over
FT=${FT:-.venv/bin/frugalthink}
SEEDS=${SEEDS:-0 1}
[ -d runs/smollm2 ] || $FT export --out runs/smollm2
[ -f runs/sums.jsonl ] || ${PY:-python3} dev/make_sums.py --out runs/sums.jsonl
SUMS=(--task jsonl:runs/sums.jsonl --task-option problem_field=question --task-option id_field=id
      --task-option level_field=level --task-option split_field=split --task-option number_fallback=true
      --task-option 'message="{question}"' --split test --samples 2 --temperature 0.6 --max-new-tokens 128
      --latency-requests 0)
suffix() { [ "$1" = 0 ] && echo "" || echo "-s$1"; }
for seed in $SEEDS; do
  s=$(suffix "$seed")
  $FT train --recipe smollm2/sums --alpha 0 --set seed="$seed" --out "runs/sums-study/a0$s" &
  $FT train --recipe smollm2/sums --alpha 0.2 --set seed="$seed" --out "runs/sums-study/a0.2$s"
  wait
  $FT eval --model "runs/sums-study/a0$s" "${SUMS[@]}" --out "runs/sums-study/a0$s-test" &
  $FT eval --model "runs/sums-study/a0.2$s" "${SUMS[@]}" --out "runs/sums-study/a0.2$s-test"
  wait
  $FT compare "runs/sums-study/a0$s-test" "runs/sums-study/a0.2$s-test"
done
$FT eval --model runs/smollm2 "${SUMS[@]}" --out runs/sums-study/base-test
for task in gsm8k math500; do
  $FT eval --model runs/smollm2 --task $task --limit 50 --samples 1 --temperature 0.6 --max-new-tokens 256 \
      --latency-requests 0 --out "runs/smollm2-$task-50"
done
$FT compare runs/sums-study/base-test runs/sums-study/a0-test runs/sums-study/a0.2-test
