#!/usr/bin/env bash
# For the lead, on a lent GPU machine (not run on the 2-core CPU box): training throughput of 1 GPU on the plain
# single-process path against 1 GPU through fastai's DDP wrapper (one process started by torchrun), and every
# GPU with `--nproc 0`. Writes the 'ddp_gpu' section of bench/RESULTS.md. About 5 minutes on an H100 (40,000 patches).
#   bash bench/ddp_gpu.sh            # or: N=20000 bash bench/ddp_gpu.sh   (fewer patches, quicker)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import accelerate, torch; assert torch.cuda.is_available(), 'no GPU visible'" || { echo "needs a GPU and the 'dist' extra: pip install -e '.[dist]'" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" bench/ddp_throughput.py --device gpu --n "${N:-40000}" --crop 64 --short 1 --long 3
