#!/usr/bin/env bash
# Issue 16 on a lent GPU: the Kaggle kernel's default recipe (`kaggle-gpu`) trained on pcam-sample and scored on both
# valid/ halves, its training throughput measured alone first (a 3-epoch probe), then cpu-best's variants over several
# seeds at once (rows `settings:NAME_seedN`; their train s and img/s are not speeds: they share the GPU and the cores).
#
# pcam-sample's 98 MB of JPEGs exceed what one device call carries (64 MiB, and a 62 MB carry was refused), and a folder
# one call carried is gone at the next call unless carried again. So the data travels in three parts of at most 45 MB,
# in calls made back to back while the machine is warm, and each call stashes its part under /tmp, which stays:
#   bash bench/gpu_recipe.sh --pack         here: .gpu/p0 (train/0), .gpu/p1 (train/1), .gpu/p2 (valid/, wheels, smoke slice)
#   bash bench/gpu_recipe.sh --stage        there, carrying .gpu/p2: stash, install the wheels, then every recipe of the wave
#                                           for one epoch on a 256-patch slice (a failure shows before the long call)
#   bash bench/gpu_recipe.sh --stash p0     there, carrying .gpu/p0
#   bash bench/gpu_recipe.sh --stash p1 && T2=480 bash bench/gpu_recipe.sh    there, carrying .gpu/p1: the runs;
#                                           rows to $OUT/rows.json, logs to $OUT/logs.tgz
# Then here: `python bench/recipe.py --merge ROWS.json` adds the rows to bench/RESULTS.md.
# Sizing (H200, 16 host cores, 2026-11-27): kaggle-gpu alone trains at ~3,200 img/s (20 epochs: 139 s); eight runs at once
# train at ~900 img/s each, so eight 20-epoch runs need ~8 min (T2=480) and the probe plus the wave fill one 10-minute call.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=${HISTO_PCAM_SRC:-../shared/data/pcam-sample} PY=${PYTHON:-python3} OUT=${OUT:-/tmp/gpu_out} L=/tmp/gpu_logs
PARTS=${HISTO_PARTS:-/tmp/histo_pcam_parts}
WAVE=${WAVE:-"kaggle-gpu:42 cpu-best:43 cpu-best:44 cpu-best:45 m2_e20:42 m2_e20:43 ref4_e20:42 ref4_e20:43"}

stash() { rm -rf "$PARTS/$1" && mkdir -p "$PARTS" && cp -r ".gpu/$1" "$PARTS/" || exit 1; echo "stashed $1: $(find "$PARTS/$1" -type f | wc -l) files"; }
install() {  # the packages the GPU image lacks, from the stashed wheels (python3 there is the image's torch)
  [ "$PY" != python3 ] || [ -d /tmp/site ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$PARTS"/p2/whl/*.whl; }

runs() {  # runs ROOT PROBE_EPOCHS [WAVE_EPOCHS]: the probe alone, then the wave at once; rows merged into $OUT/rows.json
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HISTO_CACHE=${HISTO_CACHE:-/tmp/hcache} HISTO_PCAM=$1 HISTO_BENCH_RESULTS=$L/RESULTS.md
  rm -rf $L && mkdir -p $L "$OUT" || exit 1
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1; $PY -c "import torch, fastai, timm
print('torch', torch.__version__, 'fastai', fastai.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"; } | tee $L/gpu.txt
  echo "== 1. kaggle-gpu alone, $2 epochs: training throughput"
  HISTO_RECIPE_ROWS=$L/rows_probe.json timeout ${T1:-150} $PY bench/recipe.py --settings kaggle-gpu --epochs $2 >$L/probe.log 2>&1 || tail -5 $L/probe.log
  echo "== 2. the wave, all at once: $WAVE"
  ( while sleep 20; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done >$L/gpu_util.txt 2>&1 ) & local mon=$! start=$(date +%s)
  for job in $WAVE; do local rcp=${job%:*} seed=${job#*:}
    HISTO_RECIPE_ROWS=$L/rows_${rcp}_$seed.json timeout ${T2:-480} $PY bench/recipe.py --threads 1 --settings-file bench/issue16_variants.ini \
      --settings $rcp --seed $seed ${3:+--epochs $3} >$L/${rcp}_$seed.log 2>&1 &
  done
  wait $(jobs -p | grep -vx $mon); kill $mon 2>/dev/null
  echo "wave wall: $(( $(date +%s)-start )) s"
  for job in $WAVE; do local f=${job%:*}_${job#*:}; [ -s $L/rows_$f.json ] || { echo "-- $f left no row:"; tail -4 $L/$f.log; }; done
  $PY - $L "$OUT/rows.json" <<'EOF'
import json, sys, glob
L, out = sys.argv[1:]; rows = [r for f in sorted(glob.glob(f'{L}/rows_*.json')) for r in json.load(open(f))]
json.dump(rows, open(out, 'w'), indent=1)
for r in rows: print(f"{r['name']:34} A {r['A_tta_auc']:.4f}  B {r['B_tta_auc']:.4f}  train {r['train_s']} s  {r['train_img_s']} img/s  {r['device']}")
EOF
  tar czf "$OUT/logs.tgz" -C /tmp gpu_logs
}

case "${1:-}" in
  --pack)
    rm -rf .gpu && mkdir -p .gpu/p0/train .gpu/p1/train .gpu/p2/whl || exit 1
    cp -r "$SRC/train/0" .gpu/p0/train/ && cp -r "$SRC/train/1" .gpu/p1/train/ && cp -r "$SRC/valid" .gpu/p2/ || exit 1
    for d in train/0 train/1 valid/0 valid/1; do mkdir -p .gpu/p2/smoke/$d; ls "$SRC/$d" | sed -n "1,64s|^|$SRC/$d/|p" | xargs cp -t .gpu/p2/smoke/$d || exit 1; done
    for w in fastai fastcore fastdownload fastprogress fasttransform plum_dispatch beartype timm; do cp .whl/$w-*.whl .gpu/p2/whl/ || exit 1; done
    grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
    du -sh --apparent-size .gpu/p*;;
  --stash) stash "$2";;
  --stage)
    stash p2; install || exit 1; HISTO_CACHE=/tmp/hcache_smoke runs "$PARTS/p2/smoke" 2 1;;
  *)
    for part in p0/train/0 p1/train/1 p2/valid; do [ -d "$PARTS/$part" ] || {
      echo "$PARTS/$part is missing: carry .gpu/p2 with --stage, then .gpu/p0 and .gpu/p1 with --stash, while the machine is warm"; exit 2; }; done
    install || exit 1
    rm -rf /tmp/pcam && mkdir -p /tmp/pcam/train && cp -r "$PARTS"/p0/train/0 "$PARTS"/p1/train/1 /tmp/pcam/train/ && cp -r "$PARTS"/p2/valid /tmp/pcam/ || exit 1
    runs /tmp/pcam ${PROBE_EPOCHS:-3} ${WAVE_EPOCHS:-};;
esac
