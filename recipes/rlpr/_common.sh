# Shared by the RLPR launchers in this folder (sourced, not run): RLPR's settings for recipes/_launch.sh, plus DATA_DIR.
# Each launcher sets LAUNCH_CONFIG and LAUNCH_ABOUT, sources this file and calls launch "$@".
LAUNCH_ENTRY=rlpr.main
LAUNCH_FOLDER=rlpr
LAUNCH_MODEL_KEY=actor_rollout_ref.model.path
LAUNCH_EXTRA_HELP="  DATA_DIR         a folder of prepared files with the default names: sets TRAIN_FILES and VAL_FILES
                   (those not set) to DATA_DIR/rlpr_train.parquet and the 7 benchmark files in it"

launch_extra_overrides() {
    [ -n "${DATA_DIR:-}" ] || return 0
    # The default file names come from rlpr.data.prep, which writes them.
    local names
    mapfile -t names < <("${PYTHON:-python3}" -c 'import sys
from rlpr.data.prep import TRAIN, default_file_name
from rlpr.evaluation.benchmarks import BENCHMARKS
print(f"{sys.argv[1]}/{default_file_name(TRAIN)}")
print("[" + ",".join(f"{sys.argv[1]}/{default_file_name(name)}" for name in BENCHMARKS) + "]")' "$DATA_DIR")
    [ -n "${TRAIN_FILES:-}" ] || LAUNCH_OVERRIDES+=("data.train_files=${names[0]}")
    [ -n "${VAL_FILES:-}" ] || LAUNCH_OVERRIDES+=("data.val_files=${names[1]}")
    return 0
}

# shellcheck source=recipes/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
