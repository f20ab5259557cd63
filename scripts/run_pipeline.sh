#!/usr/bin/env bash
# The pipeline as separate `accelerate launch` stages, for a GPU cluster (one node; see docs/multi_node.md for more).
#   scripts/run_pipeline.sh [RUN_DIR] [ACCELERATE_CONFIG]
# Each stage is resumable: rerunning the script continues where it stopped and skips finished stages.
set -euo pipefail
RUN=${1:-runs/cluster}
ACC=${2:-accelerate_config.yaml}
LAUNCH=(accelerate launch --config_file "$ACC")
done_() { [ -f "$1/.complete" ]; }

# 1. ICM labels (one process per GPU, each labeling its shard of the batches; then one merge run).
N=${NUM_GPUS:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
if ! done_ "$RUN/label"; then
  for i in $(seq 0 $((N - 1))); do
    CUDA_VISIBLE_DEVICES=$i icm-rm label --config configs/icm/capitals.yaml --output_dir "$RUN/label" \
      --num_shards "$N" --shard_index "$i" --resume true &
  done
  wait
  icm-rm label --config configs/icm/capitals.yaml --output_dir "$RUN/label" --resume true
fi

# 2. Reward models on ICM labels and on gold/human labels (DeepSpeed ZeRO-2).
for route in icm human; do
  data="$RUN/label/preferences.jsonl"; [ "$route" = human ] && data="$RUN/label/preferences_gold.jsonl"
  done_ "$RUN/rm_$route" || "${LAUNCH[@]}" -m icm_rm.reward.cli --config configs/rm/default.yaml \
      --train_data "$data" --output_dir "$RUN/rm_$route" --label_source "$route" \
      $( [ -d "$RUN/rm_$route" ] && echo --resume true )
done

# 3. PPO against each RM (one config line differs: reward_model).
for route in icm human; do
  done_ "$RUN/ppo_$route" || "${LAUNCH[@]}" -m rl.ppo --config configs/ppo/default.yaml \
      --reward_model "$RUN/rm_$route/model" --output_dir "$RUN/ppo_$route" \
      $( [ -d "$RUN/ppo_$route/checkpoints" ] && echo --resume )
done

# 4. Evaluation (single process).
icm-rm eval-rm --model "$RUN/rm_icm/model" --model "$RUN/rm_human/model" \
  --data ../shared/data/icm_unsupervised_elicitation/test_alpaca.json:icm_alpaca \
  --data ../shared/data/hh_rlhf/helpful-base/test.jsonl.gz:hh_rlhf --output_dir "$RUN/eval_rm"
scripts/compare_policies.sh "$RUN/ppo_icm/policy" "$RUN/ppo_human/policy" "$RUN/eval_policy"
