#!/usr/bin/env bash
# Shared by the RM-R1 launchers (sourced, not run). Each launcher sets its paper setting, then calls rm_r1_grpo or
# rm_r1_sft; every value below can be changed through the environment variable named in the help text.
set -euo pipefail

RM_R1_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

rm_r1_help() {
    # $1: the launcher's one-line description; $2: grpo | sft
    cat <<HELP
$(basename "$0"): $1

Environment variables (default in brackets):
  MODEL_PATH       model to train                               [${MODEL_PATH_DEFAULT}]
  TRAIN_FILE       training parquet                             [${TRAIN_FILE_DEFAULT}]
  VAL_FILE         held-out parquet                             [${VAL_FILE_DEFAULT}]
  GPUS_PER_NODE    GPUs per node                                [8]
  NNODES           nodes                                        [${NNODES_DEFAULT}]
  LOGGER           trainer loggers, a Hydra list                [["console","wandb"]]
  OUTPUT_DIR       checkpoints                                  [${OUTPUT_DIR_DEFAULT}]
HELP
    if [ "$2" = grpo ]; then
        cat <<HELP
  VERDICT_RULE     strict_tail | last_answer | anywhere         [strict_tail]

Multi-node: start Ray on every node first, then run this launcher on the head node only:
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
    echo "Arguments are passed on to Hydra as overrides (key=value)."
}

rm_r1_grpo() {
    # rm_r1_grpo <experiment> <data family folder> <default model> <lr> <nodes> [fixed overrides...] -- "$@"
    local experiment="$1" family="$2" model="$3" lr="$4" nodes="$5"
    shift 5
    local fixed=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do fixed+=("$1"); shift; done
    [ "$#" -gt 0 ] && shift
    MODEL_PATH_DEFAULT="$model"
    TRAIN_FILE_DEFAULT="$RM_R1_REPO/data/rm_r1/$family/train.parquet"
    VAL_FILE_DEFAULT="$RM_R1_REPO/data/rm_r1/$family/val.parquet"
    NNODES_DEFAULT="$nodes"
    OUTPUT_DIR_DEFAULT="$RM_R1_REPO/checkpoints/rm_r1/$experiment"
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        rm_r1_help "RM-R1 stage 2 (GRPO), $experiment" grpo
        return 0
    fi
    python -m verl.trainer.main_ppo \
        --config-path "$RM_R1_REPO/configs/rm_r1" --config-name grpo \
        actor_rollout_ref.model.path="${MODEL_PATH:-$MODEL_PATH_DEFAULT}" \
        data.train_files="${TRAIN_FILE:-$TRAIN_FILE_DEFAULT}" \
        data.val_files="${VAL_FILE:-$VAL_FILE_DEFAULT}" \
        actor_rollout_ref.actor.optim.lr="$lr" \
        reward.custom_reward_function.reward_kwargs.rule="${VERDICT_RULE:-strict_tail}" \
        trainer.experiment_name="$experiment" \
        trainer.n_gpus_per_node="${GPUS_PER_NODE:-8}" \
        trainer.nnodes="${NNODES:-$NNODES_DEFAULT}" \
        trainer.logger="${LOGGER:-[\"console\",\"wandb\"]}" \
        trainer.default_local_dir="${OUTPUT_DIR:-$OUTPUT_DIR_DEFAULT}" \
        ${fixed[@]+"${fixed[@]}"} "$@"
}

rm_r1_sft() {
    # rm_r1_sft <experiment> <default model> <lr> [fixed overrides...] -- "$@"
    local experiment="$1" model="$2" lr="$3"
    shift 3
    local fixed=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do fixed+=("$1"); shift; done
    [ "$#" -gt 0 ] && shift
    MODEL_PATH_DEFAULT="$model"
    TRAIN_FILE_DEFAULT="$RM_R1_REPO/data/rm_r1/sft/train.parquet"
    VAL_FILE_DEFAULT="$RM_R1_REPO/data/rm_r1/sft/val.parquet"
    NNODES_DEFAULT=1
    OUTPUT_DIR_DEFAULT="$RM_R1_REPO/checkpoints/rm_r1/$experiment"
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        rm_r1_help "RM-R1 stage 1 (distillation SFT), $experiment; links the final model to \$OUTPUT_DIR/final_hf" sft
        return 0
    fi
    local output_dir="${OUTPUT_DIR:-$OUTPUT_DIR_DEFAULT}"
    torchrun --nnodes="${NNODES:-$NNODES_DEFAULT}" --nproc_per_node="${GPUS_PER_NODE:-8}" \
        --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
        -m verl.trainer.sft_trainer \
        --config-path "$RM_R1_REPO/configs/rm_r1" --config-name sft \
        model.path="${MODEL_PATH:-$MODEL_PATH_DEFAULT}" \
        data.train_files="${TRAIN_FILE:-$TRAIN_FILE_DEFAULT}" \
        data.val_files="${VAL_FILE:-$VAL_FILE_DEFAULT}" \
        optim.lr="$lr" \
        trainer.experiment_name="$experiment" \
        trainer.n_gpus_per_node="${GPUS_PER_NODE:-8}" \
        trainer.nnodes="${NNODES:-$NNODES_DEFAULT}" \
        trainer.logger="${LOGGER:-[\"console\",\"wandb\"]}" \
        trainer.default_local_dir="$output_dir" \
        ${fixed[@]+"${fixed[@]}"} "$@"
    if [ "${NODE_RANK:-0}" = 0 ]; then
        # stage 2 reads the HuggingFace copy of the last checkpoint through a stable name
        local step
        step="$(cat "$output_dir/latest_checkpointed_iteration.txt")"
        test -d "$output_dir/global_step_$step/huggingface"
        ln -sfn "global_step_$step/huggingface" "$output_dir/final_hf"
        echo "stage-1 model: $output_dir/final_hf"
    fi
}
