# Shared body of the RLPR launchers in this folder; each launcher sets RECIPE and the DEFAULT_* values, then sources
# this file and calls rlpr_main "$@". Not meant to be run by itself.

rlpr_usage() {
    cat <<USAGE
Usage: bash ${0} [--help] [hydra overrides ...]

Trains RLPR with the recipe configs/rlpr/${RECIPE}.yaml through python -m rlpr.main. Extra arguments are Hydra
overrides (key=value) that win over everything below, e.g. trainer.total_epochs=2 rlpr.filter.beta=0.6

Environment variables (default in brackets):
  MODEL_PATH       model folder or hub id                          [${DEFAULT_MODEL_PATH}]
  DATA_DIR         folder of the prepared parquet files            [${DEFAULT_DATA_DIR}]
  TRAIN_FILES      training file(s), a Hydra list for several      [\$DATA_DIR/rlpr_train.parquet]
  VAL_FILES        validation files, a Hydra list                  [the 7 benchmark files <name>_Avg<k>.parquet in \$DATA_DIR]
  NNODES           number of nodes                                 [1]
  GPUS_PER_NODE    GPUs per node                                   [${DEFAULT_GPUS_PER_NODE}]
  LOGGER           trackers, a Hydra list                          [[console,wandb]]
  OUTPUT_DIR       checkpoints, r' cache and checked data          [outputs/rlpr/${RECIPE}]
  PROJECT_NAME     tracker project                                 [rlpr]
  EXPERIMENT_NAME  tracker run name                                [${RECIPE}]
  PYTHON           Python interpreter                              [python3]

Multi-node (an existing Ray cluster; the launcher joins it and never starts one):
  node 0:          ray start --head --port=6379
  nodes 1..N-1:    ray start --address=<node-0 address>:6379
  then on node 0:  NNODES=<N> bash ${0}
A run started again with the same OUTPUT_DIR resumes from its last checkpoint (trainer.resume_mode=auto).
USAGE
}

rlpr_main() {
    if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
        rlpr_usage
        return 0
    fi
    local python="${PYTHON:-python3}"
    local data_dir="${DATA_DIR:-${DEFAULT_DATA_DIR}}"
    local train_files="${TRAIN_FILES:-}" val_files="${VAL_FILES:-}"
    if [[ -z "${train_files}" || -z "${val_files}" ]]; then
        # The default file names come from rlpr.data_prep, which writes them.
        local defaults
        defaults="$("${python}" -c 'import sys
from rlpr.data_prep import TRAIN, default_file_name
from rlpr.validation import BENCHMARKS
print(f"{sys.argv[1]}/{default_file_name(TRAIN)}")
print("[" + ",".join(f"{sys.argv[1]}/{default_file_name(name)}" for name in BENCHMARKS) + "]")' "${data_dir}")"
        train_files="${train_files:-$(sed -n 1p <<<"${defaults}")}"
        val_files="${val_files:-$(sed -n 2p <<<"${defaults}")}"
    fi
    local nnodes="${NNODES:-1}"
    if (( nnodes > 1 )); then
        if ! ray status >/dev/null 2>&1; then
            echo "NNODES=${nnodes} needs a running Ray cluster; start it first (see: bash ${0} --help)" >&2
            return 1
        fi
        export RAY_ADDRESS="${RAY_ADDRESS:-auto}"
    fi
    set -x
    "${python}" -m rlpr.main --config-name "${RECIPE}" \
        actor_rollout_ref.model.path="${MODEL_PATH:-${DEFAULT_MODEL_PATH}}" \
        data.train_files="${train_files}" \
        data.val_files="${val_files}" \
        trainer.nnodes="${nnodes}" \
        trainer.n_gpus_per_node="${GPUS_PER_NODE:-${DEFAULT_GPUS_PER_NODE}}" \
        trainer.logger="${LOGGER:-[console,wandb]}" \
        trainer.default_local_dir="${OUTPUT_DIR:-outputs/rlpr/${RECIPE}}" \
        trainer.project_name="${PROJECT_NAME:-rlpr}" \
        trainer.experiment_name="${EXPERIMENT_NAME:-${RECIPE}}" \
        "$@"
}
