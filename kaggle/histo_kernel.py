"""histo_lib's Kaggle kernel: train (or load) a model and write a validated submission.csv, offline.

Runs as `python kaggle/histo_kernel.py` on Kaggle (internet off) with two inputs attached: the competition
`histopathologic-cancer-detection` and the dataset `histo-lib/histo-lib-wheels` (built by `kaggle/build_upload.py`).
MODE 'predict' also needs a trained run folder (model.json + model.safetensors) attached as a dataset, e.g.
`histo-lib/histo-lib-model`. Edit the CONFIG block below, or override any of it with HISTO_<NAME> environment variables
(HISTO_MODE, HISTO_EPOCHS, HISTO_MAX_TRAIN, ...); KAGGLE_INPUT and KAGGLE_WORKING move /kaggle/input and /kaggle/working.

Time budget: Kaggle stops a GPU kernel after 9 hours. The default RECIPE 'kaggle-gpu' (histo_lib's settings.ini: cpu-best's
reference CNN at a third of its width, crop 96, 20 epochs, weight EMA, mixed precision) is projected from its FLOPs per image at a stated
share of each card's float16 peak (`python bench/kaggle_projection.py --recipe kaggle-gpu`, bench/RESULTS.md section
kaggle_recipe) to well under an hour for the full competition (220,025 train + 57,458 test images) on one T4 or P100.
Every phase's wall time is printed and saved in kernel_summary.json, so a run's real figures can be read off its log.
"""
# ---- CONFIG: edit here (or set HISTO_<NAME> environment variables) ---------------------------------------------------
MODE = 'train'          # 'train': fit on the competition data here; 'predict': use an attached trained model
RECIPE = 'kaggle-gpu'   # settings.ini recipe: 'kaggle-gpu' (from scratch); 'kaggle-gpu-pretrained' is used by itself with a timm checkpoint
ARCH = None             # None: the recipe's, or the architecture of an attached timm model (config.json); else 'p4m', 'reference' or a timm name
EPOCHS = None           # None: the recipe's (these five override it)
CROP = None             # centre crop the model sees (the label depends on the centre 32x32); the recipes use all 96 px
BS = None
LR = None
TTA = 'dihedral'        # 'none', 'flip' or 'dihedral' (8 exact views)
SEED = 42
MODEL_DIR = None        # MODE 'predict': name of the attached model dataset (e.g. 'histo-lib-model'); None: search all
MAX_TRAIN = None        # train on a stratified sample of this many images (quick dry runs); None: all
WEIGHTS = None          # a timm checkpoint file to start from; None: an attached Kaggle Model in timm's layout, if any (and ARCH is None)
FREEZE_EPOCHS = None    # with a checkpoint: epochs with the body frozen first (the body then trains at LR/10); None: the recipe's
NPROC = None            # data-parallel processes, one per GPU; None: every GPU the session has (e.g. 2 on 'GPU T4 x2'), 1 on a CPU
REFIT = None            # True: the 20% validation split trains too, a final fit on every label (its valid AUC then measures fit); None: the recipe's (no refit)
# -----------------------------------------------------------------------------------------------------------------------
import os, sys, time, fnmatch, importlib, itertools, subprocess
from pathlib import Path

T0 = time.time()
INPUT = Path(os.environ.get('KAGGLE_INPUT', '/kaggle/input'))
WORKING = Path(os.environ.get('KAGGLE_WORKING', '/kaggle/working'))

def find_dir(root, pattern, depth=4):
    "Shallowest folder under `root` holding a file matching `pattern` (inline: histo_lib may not be installed yet)."
    level = [Path(root)]
    for _ in range(depth+1):
        nxt = []
        for d in level:
            try:
                with os.scandir(d) as it: entries = sorted(itertools.islice(it, 2000), key=lambda e: e.name)
            except OSError: continue
            if any(e.is_file() and fnmatch.fnmatch(e.name, pattern) for e in entries): return Path(d)
            nxt += [e.path for e in entries if e.is_dir()]
        level = nxt

def ensure_histo_lib():
    "Import histo_lib, first installing it offline from the attached wheel dataset when it is missing."
    try: import histo_lib; return histo_lib
    except ImportError: pass
    whl = find_dir(INPUT, 'histo_lib-*.whl')
    if whl is None: sys.exit(f"histo_lib is not installed and there is no histo_lib-*.whl under {INPUT}: add the dataset "
                             "histo-lib/histo-lib-wheels (built by kaggle/build_upload.py) to this kernel.")
    cmd = [sys.executable, '-m', 'pip', 'install', '--no-index', '--find-links', str(whl), 'histo_lib']
    print('[histo] installing:', ' '.join(cmd), flush=True)
    if subprocess.run(cmd).returncode:  # a dependency missing from the image and the wheel folder: say so, try alone
        print('[histo] pip could not satisfy every dependency offline; installing histo_lib with --no-deps', flush=True)
        subprocess.run(cmd + ['--no-deps'], check=True)
    importlib.invalidate_caches()
    import histo_lib; return histo_lib

def main():
    histo_lib = ensure_histo_lib()
    print(f"[histo] histo_lib {histo_lib.__version__} imported from {histo_lib.__file__} ({time.time()-T0:.1f} s)", flush=True)
    from histo_lib.kaggle import kernel_config, run_kernel
    cfg = kernel_config(dict(MODE=MODE, RECIPE=RECIPE, ARCH=ARCH, EPOCHS=EPOCHS, CROP=CROP, BS=BS, LR=LR, TTA=TTA, SEED=SEED,
                             MODEL_DIR=MODEL_DIR, MAX_TRAIN=MAX_TRAIN, WEIGHTS=WEIGHTS, FREEZE_EPOCHS=FREEZE_EPOCHS,
                             NPROC=NPROC, REFIT=REFIT))
    print('[histo] config:', cfg, flush=True)
    res = run_kernel(**cfg, input_root=INPUT, working=WORKING)
    print(f"[histo] done in {time.time()-T0:.1f} s: {res['submission']}", flush=True)

if __name__ == '__main__' or 'KAGGLE_KERNEL_RUN_TYPE' in os.environ: main()
