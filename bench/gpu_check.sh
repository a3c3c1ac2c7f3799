#!/usr/bin/env bash
# The GPU checks, as run on a lent GPU machine (one short call): the Kaggle kernel end to end on the DataBlock path,
# whole-slide tiles/s on the GPU, and the data-parallel wrapper's overhead on one GPU. Each figure goes to
# $HISTO_BENCH_RESULTS (default: bench/RESULTS.md) with the machine and command; the caller copies the sections over.
# Packages a bare GPU image lacks come as wheels in .whl/, made beside the repo with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl \
#     fastai fastcore fastdownload 'fastprogress<1.1' fasttransform plum-dispatch beartype timm openslide-python openslide-bin imagecodecs
# (fastprogress 1.1 pulls in python-fasthtml; 1.0.3 does not).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HISTO_BENCH_RESULTS=${HISTO_BENCH_RESULTS:-$PWD/bench/RESULTS.md}
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; export PYTHONPATH=/tmp/site:$PWD; else export PYTHONPATH=$PWD; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, fastai, timm, histo_lib.all; print('torch', torch.__version__, 'fastai', fastai.__version__, 'cuda', torch.cuda.is_available())" || exit 1
echo "== 1. Kaggle kernel end to end (DataBlock path), 20k train + 5k test synthetic .tif"
timeout ${T1:-240} python3 bench/kaggle_projection.py --kernel --n-train 20000 --n-test 5000 --work /tmp/kp
echo "== 2. whole-slide inference on the GPU"
timeout ${T2:-150} python3 bench/slide_throughput.py --device cuda --threads 8
if [ -f bench/ddp_gpu.sh ]; then echo "== 3. data-parallel wrapper on one GPU"; N=${N:-16000} PYTHON=python3 timeout ${T3:-200} bash bench/ddp_gpu.sh; fi
# 4. The Kaggle kernel's default recipe on the real sample (both valid/ halves, train s -> img/s) when the sample is
# there. pcam-sample's 98 MB of JPEGs exceed the device tool's 64 MiB carry: bench/gpu_recipe.sh carries it in three
# calls and runs this recipe and a seed sweep (measured there on 2026-11-27).
if [ -d "${HISTO_PCAM:-../shared/data/pcam-sample}/train" ]; then echo "== 4. kaggle-gpu recipe on pcam-sample"
  timeout ${T4:-420} python3 bench/recipe.py --settings kaggle-gpu; fi
