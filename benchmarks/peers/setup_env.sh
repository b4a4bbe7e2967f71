#!/usr/bin/env bash
# Create benchmarks/peers/.venv: torch 2.13.0 (CPU wheel) + SpikingJelly 2.0.0 for sj_eval.py.
# SpikingJelly stays out of snnc's own .venv; its declared deps are skipped (--no-deps) and
# only the ones its ann2snn code imports are installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip
# 2.13.0 is the CPU wheel here; any other version pulls GBs of CUDA builds
"${pip[@]}" torch==2.13.0 numpy
"${pip[@]}" --no-deps spikingjelly==2.0.0 tqdm "loguru>=0.7,<1" requests
# requests' own deps (imported by spikingjelly's dataset helpers at import time)
"${pip[@]}" charset-normalizer idna urllib3 certifi
"$venv/bin/python" -c "import torch, spikingjelly.activation_based.ann2snn as a; \
print('torch', torch.__version__, 'ann2snn', a.__file__)"
touch "$venv/.peers-installed"
