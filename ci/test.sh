#!/usr/bin/env bash
# The test command README.md gives: the whole suite, offline, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest "$@"
