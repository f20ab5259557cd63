#!/usr/bin/env bash
# Head to head: a policy trained against the ICM RM vs one trained against the human-label RM, each also against the
# starting policy, judged by the task's gold checker (or JUDGE=<held-out RM dir> — never an RM either was trained on).
#   scripts/compare_policies.sh ICM_POLICY HUMAN_POLICY [OUT_DIR]
#   env: REFERENCE (starting policy, default smollm2-135m), PROMPTS (default builtin:capitals), JUDGE, RMS (NAME=DIR …)
set -euo pipefail
ICM=${1:?icm policy dir}; HUMAN=${2:?human policy dir}; OUT=${3:-runs/compare_policies}
args=(--policies "icm_rm_policy=$ICM" --policies "human_rm_policy=$HUMAN"
      --reference "${REFERENCE:-smollm2-135m}" --prompts "${PROMPTS:-builtin:capitals}" --output_dir "$OUT")
[ -n "${JUDGE:-}" ] && args+=(--judge "$JUDGE")
for rm in ${RMS:-}; do args+=(--rms "$rm"); done
icm-rm eval-policy "${args[@]}"
echo "table: $OUT/eval_policy.md   samples: $OUT/samples.jsonl   plot: $OUT/win_rates.png"
