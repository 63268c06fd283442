#!/usr/bin/env bash
# The demo family under both update rules, from one base (docs/results/update-rules.md). About 35 minutes on 2 cores.
#   bash dev/update_rules.sh        then: frugalthink compare runs/rules-trl/alpha-A/eval runs/rules-official/alpha-A/eval
set -euo pipefail
cd "$(dirname "$0")/.."
B=.venv/bin/frugalthink
$B base --out runs/base
for rule in official trl; do
  $B sweep --recipe tiny/rl --set model=runs/base --set update_rule=$rule \
    --alphas 0,0.05,0.2,0.4 --parallel 2 --latency-requests 8 --out runs/rules-$rule
done
