#!/usr/bin/env bash
# Every GPU measurement, as run on a lent GPU machine (the device tool's calls: 10 minutes each, 64 MiB carried).
#   bash bench/gpu.sh check          the Kaggle kernel end to end on synthetic .tif (kaggle_measured), whole-slide tiles/s
#                                    (slide_gpu), and 1 GPU plain against 1 GPU through the DDP wrapper (ddp_gpu)
#   bash bench/gpu.sh pack           HERE: the sample in three parts of <= 45 MB (.gpu/p0 train/0, .gpu/p1 train/1,
#                                    .gpu/p2 valid/ + test/ + wheels + a 64-patch smoke slice); pcam-sample exceeds one carry
#   bash bench/gpu.sh stage          THERE, carrying .gpu/p2: stash it under /tmp (which outlives a call), install the
#                                    wheels, run the wave for one epoch on the smoke slice (a failure shows before the long call)
#   bash bench/gpu.sh stash p0       THERE, carrying .gpu/p0 (then p1): stash that part
#   bash bench/gpu.sh recipe         THERE, after the three parts: the wave of recipe.py runs at once; rows to $OUT/rows.json
# Then here: `python bench/recipe.py --merge ROWS.json`. WAVE="VARIANT:SEED ..." names the runs (default below).
# Figures go to $HISTO_BENCH_RESULTS (default bench/RESULTS.md there); copy the sections back. Packages a bare GPU image
# lacks come as wheels in .whl/, made beside the repo with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl \
#     fastai fastcore fastdownload 'fastprogress<1.1' fasttransform plum-dispatch beartype timm openslide-python openslide-bin imagecodecs
# Sizing (H200, 16 host cores, 2026-11-27): cpu-best alone trains at ~3,200 img/s (20 epochs: 139 s); eight runs at once
# at ~900 img/s each, so eight 20-epoch runs need ~8 min.
set -uo pipefail
SELF=$(realpath "$0"); cd "$(dirname "$SELF")/.."
SRC=${HISTO_PCAM_SRC:-../shared/data/pcam-sample} PY=${PYTHON:-python3} OUT=${OUT:-/tmp/gpu_out} L=/tmp/gpu_logs
PARTS=${HISTO_PARTS:-/tmp/histo_pcam_parts}
WAVE=${WAVE:-"cpu-best:42 cpu-best:43 cpu-best:44 ref_e20_stain05:42 ref_e20_stain05:43 ref_e20_stain05:44"}
export PYTHONUNBUFFERED=1 HISTO_BENCH_RESULTS=${HISTO_BENCH_RESULTS:-$PWD/bench/RESULTS.md}

install() {  # the packages the GPU image lacks, from wheels (python3 there is the image's torch)
  local whl=${1:-.whl}
  if [ ! -d /tmp/site ] && [ -d "$whl" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$whl"/*.whl || return 1; fi
  export PYTHONPATH=/tmp/site:$PWD; }
stash() { rm -rf "$PARTS/$1" && mkdir -p "$PARTS" && cp -r ".gpu/$1" "$PARTS/" || exit 1; echo "stashed $1: $(find "$PARTS/$1" -type f | wc -l) files"; }
gpu() { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c "import torch, fastai, timm; print('torch', torch.__version__, 'fastai', fastai.__version__, 'cuda', torch.cuda.is_available())"; }

wave() {  # wave DATA [EPOCHS]: every VARIANT:SEED of $WAVE at once, each its own rows file, merged into $OUT/rows.json
  rm -rf $L && mkdir -p $L "$OUT" || exit 1; gpu | tee $L/gpu.txt
  local ini=bench/variants.ini start=$(date +%s)
  if [ -n "${2:-}" ]; then ini=$L/variants.ini; sed "s/^epochs = .*/epochs = $2/" bench/variants.ini > $ini; fi
  for job in $WAVE; do local v=${job%:*} s=${job#*:}
    HISTO_PCAM=$1 HISTO_RECIPE_ROWS=$L/rows_${v}_$s.json HISTO_RECIPE_RUNS=/tmp/gpu_runs HISTO_RECIPE_VARIANTS=$ini \
      timeout ${T2:-540} $PY bench/recipe.py $v --seeds $s --threads 1 >$L/${v}_$s.log 2>&1 &
  done; wait
  echo "wave wall: $(( $(date +%s)-start )) s"
  $PY - $L "$OUT/rows.json" <<'EOF'
import json, sys, glob
L, out = sys.argv[1:]; rows = [r for f in sorted(glob.glob(f'{L}/rows_*.json')) for r in json.load(open(f))]
json.dump(rows, open(out, 'w'), indent=1)
for r in rows: print(f"{r['variant']:24} seed {r['seed']}: valid {r['tta_auc']:.4f}  test {r.get('test_tta_auc', '-')}  shifted {r['shift_tta_auc']:.4f}  {r['train_s']} s")
EOF
  tar czf "$OUT/logs.tgz" -C /tmp gpu_logs; }

case "${1:-}" in
  check)
    install .whl || exit 1; gpu || exit 1
    echo "== 1. Kaggle kernel end to end, 20k train + 5k test synthetic .tif"
    timeout ${T1:-240} $PY bench/kaggle_projection.py --kernel --n-train 20000 --n-test 5000 --work /tmp/kp
    echo "== 2. whole-slide inference on the GPU"
    timeout ${T2:-150} $PY bench/slide_throughput.py --device cuda --threads 8 --size 20000 --small 6000 --tissue 600 --quick --section slide_gpu
    echo "== 3. the DDP wrapper on one GPU"
    $PY -c "import accelerate" 2>/dev/null || echo "accelerate missing: the 'dist' extra (add its wheel to .whl)"
    timeout ${T3:-200} $PY bench/ddp_throughput.py --device gpu --n "${N:-16000}" --crop 64 --short 1 --long 3;;
  pack)
    rm -rf .gpu && mkdir -p .gpu/p0/train .gpu/p1/train .gpu/p2/whl || exit 1
    cp -r "$SRC/train/0" .gpu/p0/train/ && cp -r "$SRC/train/1" .gpu/p1/train/ && cp -r "$SRC/valid" "$SRC/test" .gpu/p2/ || exit 1
    for d in train/0 train/1 valid/0 valid/1 test/0 test/1; do mkdir -p .gpu/p2/smoke/$d; ls "$SRC/$d" | sed -n "1,64s|^|$SRC/$d/|p" | xargs cp -t .gpu/p2/smoke/$d || exit 1; done
    cp .whl/*.whl .gpu/p2/whl/ || exit 1
    grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
    du -sh --apparent-size .gpu/p*;;
  stash) stash "$2";;
  stage) stash p2; install "$PARTS/p2/whl" || exit 1; HISTO_CACHE=/tmp/hcache_smoke wave "$PARTS/p2/smoke" 1;;
  recipe)
    for part in p0/train/0 p1/train/1 p2/valid; do [ -d "$PARTS/$part" ] || {
      echo "$PARTS/$part is missing: carry .gpu/p2 with 'stage', then .gpu/p0 and .gpu/p1 with 'stash', while the machine is warm"; exit 2; }; done
    install "$PARTS/p2/whl" || exit 1
    rm -rf /tmp/pcam && mkdir -p /tmp/pcam/train && cp -r "$PARTS"/p0/train/0 "$PARTS"/p1/train/1 /tmp/pcam/train/ && cp -r "$PARTS"/p2/valid "$PARTS"/p2/test /tmp/pcam/ || exit 1
    HISTO_CACHE=${HISTO_CACHE:-/tmp/hcache} wave /tmp/pcam;;
  *) sed -n "2,14p" "$SELF"; exit 2;;
esac
