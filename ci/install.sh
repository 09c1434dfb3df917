#!/usr/bin/env bash
# Install torch's CPU wheel first (a bare `torch` requirement would pull a multi-GB CUDA build),
# then the project with its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
