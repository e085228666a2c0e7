#!/usr/bin/env bash
# RLPR on Gemma2-2B-it (configs/rlpr/gemma2-2b-it.yaml). Run with --help for the environment variables it reads.
set -euo pipefail

RECIPE=gemma2-2b-it
DEFAULT_MODEL_PATH=google/gemma-2-2b-it
# Training and validation parquet files prepared by rlpr.data_prep with format R1_nothink.
DEFAULT_DATA_DIR=${HOME}/data/rlpr/r1_nothink
DEFAULT_GPUS_PER_NODE=8

# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
rlpr_main "$@"
