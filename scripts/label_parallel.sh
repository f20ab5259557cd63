#!/usr/bin/env bash
# Label one pool with N worker processes that share one scorer server, then merge their batches.
#
#   scripts/label_parallel.sh N CONFIG.yaml [extra `icm-rm label` flags ...]
#
# Each worker runs `icm-rm label --num_shards N --shard_index i` on the same output_dir: it searches the batches
# j ≡ i (mod N) and writes batches/batch_XXX.json (batches are independent ICM searches, so this is the paper's
# per-batch algorithm, run in parallel). A final `--num_shards 1 --resume true` run reuses every finished batch,
# labels any a dead worker left behind, and writes labels.jsonl / preferences / report once, deterministically.
# With `scorer: openai` all workers point at one server (server.base_url); a shared server.cache_path is safe.
# Worker logs: <output_dir>/shard_<i>.log. On GPUs, set CUDA_VISIBLE_DEVICES per worker via LABEL_GPUS="0 1 2 3".
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
  echo "usage: $0 N CONFIG.yaml [extra icm-rm label flags...]" >&2
  exit 2
fi
N=$1; CONFIG=$2; shift 2
ICM_RM=${ICM_RM:-.venv/bin/icm-rm}
OUT=$("${PYTHON:-.venv/bin/python}" - "$CONFIG" "$@" <<'PY'
import sys
from icm_rm.infra.config import parse_config
from icm_rm.label import LabelConfig
cfg, _ = parse_config(LabelConfig, ["--config", sys.argv[1], *sys.argv[2:]])
print(cfg.output_dir)
PY
)
mkdir -p "$OUT"
read -r -a GPUS <<< "${LABEL_GPUS:-}"
pids=()
for ((i = 0; i < N; i++)); do
  env_gpu=()
  if [[ ${#GPUS[@]} -gt 0 ]]; then env_gpu=(CUDA_VISIBLE_DEVICES="${GPUS[$((i % ${#GPUS[@]}))]}"); fi
  env "${env_gpu[@]}" "$ICM_RM" label --config "$CONFIG" "$@" --num_shards "$N" --shard_index "$i" \
    > "$OUT/shard_$i.log" 2>&1 &
  pids+=($!)
done
for ((i = 0; i < N; i++)); do
  if ! wait "${pids[$i]}"; then
    echo "label_parallel: shard $i failed (see $OUT/shard_$i.log); the merge step labels its batches" >&2
  fi
done
exec "$ICM_RM" label --config "$CONFIG" "$@" --num_shards 1 --shard_index 0 --resume true
