#!/usr/bin/env bash
# Train a reward model with DeepSpeed ZeRO-3 (parameters sharded across GPUs; the export gathers a plain HF model
# because configs/deepspeed/zero3.json sets stage3_gather_16bit_weights_on_model_save: true).
#   scripts/train_rm_zero3.sh                                   # configs/rm/default.yaml on every visible GPU
#   CONFIG=configs/rm/lora.yaml NPROC=4 scripts/train_rm_zero3.sh --trainer.learning_rate 5e-5
# Extra arguments are train-rm flags. ZeRO-2 (the default launcher config) needs no script:
#   accelerate launch --config_file accelerate_config.yaml -m icm_rm.reward.cli --config configs/rm/default.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/rm/default.yaml}
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
if [ "${NPROC}" -lt 1 ]; then
  echo "train_rm_zero3.sh: no GPU found; set NPROC, or see tests/test_reward_multiproc.py for a CPU (gloo) launch" >&2
  exit 2
fi
exec accelerate launch --config_file accelerate_config.yaml --num_processes "${NPROC}" \
  --deepspeed_config_file configs/deepspeed/zero3.json \
  -m icm_rm.reward.cli --config "${CONFIG}" --expect_world_size "${NPROC}" "$@"
