#!/usr/bin/env bash
# The same loop as toolsft-gate.yml, locally: gen -> train (smoke) -> export -> eval -> gate.
# Usage: examples/ci/run-local.sh [suite] [model]    (defaults: commerce tiny-random)
set -euo pipefail
cd "$(dirname "$0")/../.."
SUITE="${1:-commerce}"
MODEL="${2:-tiny-random}"
T=.venv/bin/toolsft
OUT="runs/ci-$SUITE"
$T gen --suite "tool_schemas/$SUITE" --out "datasets/$SUITE" --seed 0 --per-stage 200
$T train --all --data "datasets/$SUITE" --out "$OUT" --model "$MODEL" --max-steps 5 --overwrite
$T export --run "$OUT" --stage 3 --merge --out "$OUT/merged"
$T eval --suite "tool_schemas/$SUITE" --data "datasets/$SUITE" --model "$OUT/merged" \
  --constrained --limit 20 --max-tokens 128 --out "reports/ci-$SUITE" --quiet
BASE="evals/baselines/$SUITE.json"
if [ ! -f "$BASE" ]; then
  $T gate "reports/ci-$SUITE/results.json" --baseline "$BASE" --update
fi
$T gate "reports/ci-$SUITE/results.json" --baseline "$BASE" --tolerances evals/tolerances.yaml
