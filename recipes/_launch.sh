# Shared by every launcher under recipes/ (sourced, not run). A launcher names its entry point and its config, then
# calls launch "$@". One convention for every recipe:
#   * the settings come from the YAML config; an environment variable becomes a Hydra override only when it is set,
#     so `python -m <entry> --config-name <config>` and the launcher train with the same values and write to the same
#     place;
#   * the launcher runs from the repository root: relative paths (in the configs and in the variables) are relative to
#     it, and the entry point makes them absolute before anything starts;
#   * before anything starts, `<entry> --preflight` checks the config, the GPUs (Ray's when a cluster is used, else
#     nvidia-smi) and a wandb key, and fails in seconds naming what is missing.
# Variables a launcher sets before sourcing: LAUNCH_ENTRY (rlpr.main | rm_r1.main), LAUNCH_CONFIG (the config name),
# LAUNCH_FOLDER (configs/<folder>), LAUNCH_TORCHRUN (1: the config runs under torchrun, one launcher per node),
# LAUNCH_MODEL_KEY (the model path key), LAUNCH_ABOUT (one line for --help).
set -euo pipefail

LAUNCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

launch_values() {
    # launch_values <key,key,...>: the config's values, one a line (lists as Hydra lists). verl's config folder is
    # named by its file path: the configs' pkg://verl.trainer.config would import verl (torch, Ray: seconds of CPU).
    "${PYTHON:-python3}" -c '
import importlib.util, sys
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
verl_dir = importlib.util.find_spec("verl").submodule_search_locations[0]
with initialize_config_dir(config_dir=sys.argv[1], version_base=None):
    cfg = compose(config_name=sys.argv[2], overrides=[f"hydra.searchpath=[file://{verl_dir}/trainer/config]"])
for key in sys.argv[3].split(","):
    value = OmegaConf.select(cfg, key)
    print("[" + ",".join(map(str, value)) + "]" if OmegaConf.is_list(value) else value)
' "$LAUNCH_REPO/configs/$LAUNCH_FOLDER" "$LAUNCH_CONFIG" "$1"
}

launch_help() {
    local keys="$LAUNCH_MODEL_KEY,data.train_files,data.val_files,trainer.nnodes,trainer.n_gpus_per_node"
    keys="$keys,trainer.logger,trainer.default_local_dir,trainer.project_name,trainer.experiment_name"
    local d
    mapfile -t d < <(launch_values "$keys")
    cat <<HELP
Usage: bash $0 [--help] [key=value ...]

$LAUNCH_ABOUT
Settings: configs/$LAUNCH_FOLDER/$LAUNCH_CONFIG.yaml, run through python -m $LAUNCH_ENTRY. Arguments are Hydra
overrides (key=value) that win over everything. An environment variable overrides its key only when it is set
(the config's value in brackets):
  MODEL_PATH       $LAUNCH_MODEL_KEY   [${d[0]}]
  TRAIN_FILES      data.train_files, a Hydra list for several   [${d[1]}]
  VAL_FILES        data.val_files, a Hydra list                 [${d[2]}]
  NNODES           trainer.nnodes                               [${d[3]}]
  GPUS_PER_NODE    trainer.n_gpus_per_node                      [${d[4]}]
  LOGGER           trainer.logger, a Hydra list                 [${d[5]}]
  OUTPUT_DIR       trainer.default_local_dir (checkpoints)      [${d[6]}]
  PROJECT_NAME     trainer.project_name                         [${d[7]}]
  EXPERIMENT_NAME  trainer.experiment_name                      [${d[8]}]
  PYTHON           the Python interpreter                       [python3]
HELP
    if [ -n "${LAUNCH_EXTRA_HELP:-}" ]; then printf '%s\n' "$LAUNCH_EXTRA_HELP"; fi
    cat <<HELP

Relative paths are relative to the repository root ($LAUNCH_REPO), where the launcher runs; the entry point makes
them absolute (and expands ~ and \$VARIABLES) before anything starts. The wandb logger needs \`wandb login\` (or
WANDB_API_KEY); without one use LOGGER='[console,tensorboard]'. A run started again with the same OUTPUT_DIR resumes
from its last checkpoint (trainer.resume_mode=auto).

Several nodes: install this package at the same path on every node (or on a shared filesystem; Ray ships no code),
and keep data, models and OUTPUT_DIR on a filesystem every node sees at the same path.
HELP
    if [ "${LAUNCH_TORCHRUN:-0}" = 1 ]; then
        cat <<HELP
  every node:      NNODES=<N> NODE_RANK=<this node's rank> MASTER_ADDR=<node 0's address> [MASTER_PORT=29500] bash $0
HELP
    else
        cat <<HELP
  node 0:          ray start --head --port=6379
  nodes 1..N-1:    ray start --address=<node-0 address>:6379
  then on node 0:  NNODES=<N> bash $0
HELP
    fi
}

launch_overrides() {
    # fills LAUNCH_OVERRIDES with one Hydra override per variable that is set
    LAUNCH_OVERRIDES=()
    [ -n "${MODEL_PATH:-}" ] && LAUNCH_OVERRIDES+=("$LAUNCH_MODEL_KEY=$MODEL_PATH")
    [ -n "${TRAIN_FILES:-}" ] && LAUNCH_OVERRIDES+=("data.train_files=$TRAIN_FILES")
    [ -n "${VAL_FILES:-}" ] && LAUNCH_OVERRIDES+=("data.val_files=$VAL_FILES")
    [ -n "${NNODES:-}" ] && LAUNCH_OVERRIDES+=("trainer.nnodes=$NNODES")
    [ -n "${GPUS_PER_NODE:-}" ] && LAUNCH_OVERRIDES+=("trainer.n_gpus_per_node=$GPUS_PER_NODE")
    [ -n "${LOGGER:-}" ] && LAUNCH_OVERRIDES+=("trainer.logger=$LOGGER")
    [ -n "${OUTPUT_DIR:-}" ] && LAUNCH_OVERRIDES+=("trainer.default_local_dir=$OUTPUT_DIR")
    [ -n "${PROJECT_NAME:-}" ] && LAUNCH_OVERRIDES+=("trainer.project_name=$PROJECT_NAME")
    [ -n "${EXPERIMENT_NAME:-}" ] && LAUNCH_OVERRIDES+=("trainer.experiment_name=$EXPERIMENT_NAME")
    if declare -F launch_extra_overrides >/dev/null; then launch_extra_overrides; fi
    return 0
}

launch() {
    if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
        launch_help
        return 0
    fi
    local python="${PYTHON:-python3}"
    cd "$LAUNCH_REPO"
    launch_overrides
    local args=(--config-name "$LAUNCH_CONFIG" ${LAUNCH_OVERRIDES[@]+"${LAUNCH_OVERRIDES[@]}"} "$@")
    if [ "${LAUNCH_TORCHRUN:-0}" != 1 ] && (( ${NNODES:-1} > 1 )); then
        if ! ray status >/dev/null 2>&1; then
            echo "NNODES=${NNODES} needs a running Ray cluster; start it first (see: bash $0 --help)" >&2
            return 1
        fi
        export RAY_ADDRESS="${RAY_ADDRESS:-auto}"
    fi
    local layout nnodes gpus output_dir
    layout="$("$python" -m "$LAUNCH_ENTRY" --preflight "${args[@]}")"
    { read -r nnodes; read -r gpus; read -r output_dir; } <<<"$layout"
    echo "$LAUNCH_CONFIG: ${nnodes} node(s) x ${gpus} GPUs, checkpoints in ${output_dir}"
    if [ "${LAUNCH_TORCHRUN:-0}" != 1 ]; then
        "$python" -m "$LAUNCH_ENTRY" "${args[@]}"
        return
    fi
    "$python" -m torch.distributed.run --nnodes="$nnodes" --nproc_per_node="$gpus" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
        -m "$LAUNCH_ENTRY" "${args[@]}"
    if [ "${NODE_RANK:-0}" = 0 ]; then
        # stage 2 reads the HuggingFace copy of the last checkpoint through a stable name
        local step
        step="$(cat "$output_dir/latest_checkpointed_iteration.txt")"
        test -d "$output_dir/global_step_$step/huggingface"
        ln -sfn "global_step_$step/huggingface" "$output_dir/final_hf"
        echo "stage-1 model: $output_dir/final_hf"
    fi
}
