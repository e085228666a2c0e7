#!/usr/bin/env bash
# Shared by the RM-R1 launchers (sourced, not run). Each launcher names its paper setting's config,
# configs/rm_r1/<setting>.yaml, which holds the setting's values; the environment variables in the help text override
# them, and only when set. Relative paths, in the configs and in the variables, are relative to the repository root,
# where the launchers run.
set -euo pipefail

RM_R1_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RM_R1_CONFIGS="$RM_R1_REPO/configs/rm_r1"

rm_r1_values() {
    # rm_r1_values <config> <key,key,...> [hydra overrides...]: the composed values, one a line (lists as JSON)
    python -c '
import json, sys
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
with initialize_config_dir(config_dir=sys.argv[1], version_base=None):
    cfg = compose(config_name=sys.argv[2], overrides=sys.argv[4:])
for key in sys.argv[3].split(","):
    value = OmegaConf.select(cfg, key)
    print(json.dumps(OmegaConf.to_container(value)) if OmegaConf.is_config(value) else value)
' "$RM_R1_CONFIGS" "$@"
}

rm_r1_help() {
    # rm_r1_help <config> <description> <grpo | sft>
    local model_key=actor_rollout_ref.model.path defaults
    [ "$3" = sft ] && model_key=model.path
    local keys="$model_key,data.train_files,data.val_files,trainer.n_gpus_per_node,trainer.nnodes,trainer.logger"
    keys="$keys,trainer.default_local_dir"
    [ "$3" = grpo ] && keys="$keys,reward.custom_reward_function.reward_kwargs.rule"
    defaults="$(rm_r1_values "$1" "$keys")"
    mapfile -t defaults <<<"$defaults"
    cat <<HELP
$(basename "$0"): $2

Settings: configs/rm_r1/$1.yaml. Environment variables override them (default in brackets):
  MODEL_PATH       model to train                               [${defaults[0]}]
  TRAIN_FILE       training parquet                             [${defaults[1]}]
  VAL_FILE         held-out parquet                             [${defaults[2]}]
  GPUS_PER_NODE    GPUs per node                                [${defaults[3]}]
  NNODES           nodes                                        [${defaults[4]}]
  LOGGER           trainer loggers, a Hydra list                [${defaults[5]}]
  OUTPUT_DIR       checkpoints                                  [${defaults[6]}]
HELP
    if [ "$3" = grpo ]; then
        cat <<HELP
  VERDICT_RULE     strict_tail | last_answer | anywhere         [${defaults[7]}]

Multi-node: start Ray on every node first, from the repository root, then run this launcher on the head node only:
  node 0:      ray start --head --port 6379
  other nodes: ray start --address <node-0-ip>:6379
  node 0:      NNODES=<nodes> $0
HELP
    else
        cat <<HELP
  NODE_RANK        this node's rank (multi-node)                [0]
  MASTER_ADDR      node 0's address (multi-node)                [127.0.0.1]
  MASTER_PORT      rendezvous port                              [29500]

Multi-node: run this launcher on every node with the same NNODES and MASTER_ADDR and its own NODE_RANK.
HELP
    fi
    echo
    echo "Relative paths are relative to the repository root ($RM_R1_REPO)."
    echo "Arguments are passed on to Hydra as overrides (key=value)."
}

rm_r1_env_overrides() {
    # rm_r1_env_overrides <model key>: fills the array RM_R1_OVERRIDES with a Hydra override per variable that is set
    RM_R1_OVERRIDES=()
    [ -n "${MODEL_PATH:-}" ] && RM_R1_OVERRIDES+=("$1=$MODEL_PATH")
    [ -n "${TRAIN_FILE:-}" ] && RM_R1_OVERRIDES+=("data.train_files=$TRAIN_FILE")
    [ -n "${VAL_FILE:-}" ] && RM_R1_OVERRIDES+=("data.val_files=$VAL_FILE")
    [ -n "${GPUS_PER_NODE:-}" ] && RM_R1_OVERRIDES+=("trainer.n_gpus_per_node=$GPUS_PER_NODE")
    [ -n "${NNODES:-}" ] && RM_R1_OVERRIDES+=("trainer.nnodes=$NNODES")
    [ -n "${LOGGER:-}" ] && RM_R1_OVERRIDES+=("trainer.logger=$LOGGER")
    [ -n "${OUTPUT_DIR:-}" ] && RM_R1_OVERRIDES+=("trainer.default_local_dir=$OUTPUT_DIR")
    return 0
}

rm_r1_grpo() {
    # rm_r1_grpo <config> "$@"
    local config="$1"
    shift
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        rm_r1_help "$config" "RM-R1 stage 2 (GRPO), $config" grpo
        return 0
    fi
    rm_r1_env_overrides actor_rollout_ref.model.path
    [ -n "${VERDICT_RULE:-}" ] && RM_R1_OVERRIDES+=("reward.custom_reward_function.reward_kwargs.rule=$VERDICT_RULE")
    cd "$RM_R1_REPO"
    python -m verl.trainer.main_ppo --config-path "$RM_R1_CONFIGS" --config-name "$config" \
        ${RM_R1_OVERRIDES[@]+"${RM_R1_OVERRIDES[@]}"} "$@"
}

rm_r1_sft() {
    # rm_r1_sft <config> "$@"
    local config="$1"
    shift
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        rm_r1_help "$config" \
            "RM-R1 stage 1 (distillation SFT), $config; links the final model to \$OUTPUT_DIR/final_hf" sft
        return 0
    fi
    rm_r1_env_overrides model.path
    cd "$RM_R1_REPO"
    # torchrun's process layout and the checkpoint folder come from the composed config, overrides included
    local layout nnodes gpus output_dir
    layout="$(rm_r1_values "$config" trainer.nnodes,trainer.n_gpus_per_node,trainer.default_local_dir \
        ${RM_R1_OVERRIDES[@]+"${RM_R1_OVERRIDES[@]}"} "$@")"
    { read -r nnodes; read -r gpus; read -r output_dir; } <<<"$layout"
    torchrun --nnodes="$nnodes" --nproc_per_node="$gpus" \
        --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
        -m verl.trainer.sft_trainer --config-path "$RM_R1_CONFIGS" --config-name "$config" \
        ${RM_R1_OVERRIDES[@]+"${RM_R1_OVERRIDES[@]}"} "$@"
    if [ "${NODE_RANK:-0}" = 0 ]; then
        # stage 2 reads the HuggingFace copy of the last checkpoint through a stable name
        local step
        step="$(cat "$output_dir/latest_checkpointed_iteration.txt")"
        test -d "$output_dir/global_step_$step/huggingface"
        ln -sfn "global_step_$step/huggingface" "$output_dir/final_hf"
        echo "stage-1 model: $output_dir/final_hf"
    fi
}
