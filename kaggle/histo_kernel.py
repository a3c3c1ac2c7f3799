"""histo_lib's Kaggle kernel: train (or load) a model and write a validated submission.csv, offline.

Runs as `python kaggle/histo_kernel.py` on Kaggle (internet off) with two inputs attached: the competition
`histopathologic-cancer-detection` and your wheel dataset `<you>/histo-lib-wheels`; `python kaggle/build_upload.py --user <you>`
builds both uploads (kaggle/_upload/wheels and kaggle/_upload/kernel, this script with its metadata), and
`python kaggle/run_local.py` runs this script on a synthetic /kaggle/input in a virtual environment without histo_lib first.
MODE 'predict' also needs a trained run folder (model.json + model.safetensors) attached as a dataset, e.g.
`<you>/histo-lib-model`. Edit the CONFIG block below, or override any of it with HISTO_<NAME> environment variables
(HISTO_MODE, HISTO_EPOCHS, HISTO_MAX_TRAIN, ...; one that nothing reads, e.g. HISTO_EPOCH, is refused and the closest named);
KAGGLE_INPUT and KAGGLE_WORKING move /kaggle/input and /kaggle/working.
Every phase's wall time is printed and saved in kernel_summary.json. What to expect of the full run, time and score, and
how each figure was found: the README, section "Submitting from a Kaggle kernel", paragraph "Time and score".
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
CONFIG = {k:v for k,v in dict(globals()).items() if k.isupper()}  # the block above; `kernel_config` types each by its declaration
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

# histo_lib's optional parts the kernel uses, besides its base requirements: 'dist' (accelerate) for NPROC's data-parallel
# processes. `kaggle/build_upload.py` bundles the ones Kaggle's image is not known to have; `missing_requirements` checks them here.
EXTRAS = ('dist',)

def missing_requirements(reqs, # requirement strings as in a wheel's metadata: 'torch>=2.4', 'accelerate>=1.0; extra == "dist"'
                         extras=EXTRAS)->list:
    "The requirements among `reqs` (those of no extra, or of one of `extras`) that this Python does not have installed at a fitting version."
    from importlib import metadata
    try: from packaging.requirements import Requirement
    except ImportError: from pip._vendor.packaging.requirements import Requirement
    res = []
    for r in map(Requirement, reqs):
        if r.marker is not None and not any(r.marker.evaluate({'extra': e}) for e in ('', *extras)): continue
        try: have = metadata.version(r.name)
        except metadata.PackageNotFoundError: res.append(f"{r.name}{r.specifier} (not installed)"); continue
        if not r.specifier.contains(have, prereleases=True): res.append(f"{r.name}{r.specifier} (found {have})")
    return res

def ensure_histo_lib():
    "Import histo_lib, first installing it offline from the attached wheel dataset when it is missing, after checking its requirements."
    from importlib import metadata
    try: metadata.version('histo_lib')
    except metadata.PackageNotFoundError:
        whl = find_dir(INPUT, 'histo_lib-*.whl')
        if whl is None: sys.exit(f"histo_lib is not installed and there is no histo_lib-*.whl under {INPUT}: add your wheel dataset "
                                 "<you>/histo-lib-wheels (built by `python kaggle/build_upload.py --user <you>`) to this kernel.")
        # every wheel of the bundle, without dependencies: the check below then names in one line all that is still missing
        # (pip's resolver would walk the whole image and stop at the first)
        cmd = [sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', *sorted(str(f) for f in whl.glob('*.whl'))]
        print('[histo] installing:', ' '.join(cmd), flush=True)
        if subprocess.run(cmd).returncode: sys.exit(f"pip could not install the wheels in {whl} (its message is above): rebuild the wheel dataset.")
        importlib.invalidate_caches()
    if missing := missing_requirements(metadata.requires('histo_lib') or []):
        sys.exit(f"histo_lib {metadata.version('histo_lib')} needs what this Python lacks: {', '.join(missing)}; rebuild the wheel dataset "
                 "with `python kaggle/build_upload.py --user <you> --extra NAME` for each, upload it and run again.")
    import histo_lib; return histo_lib

def main():
    histo_lib = ensure_histo_lib()
    print(f"[histo] histo_lib {histo_lib.__version__} imported from {histo_lib.__file__} ({time.time()-T0:.1f} s)", flush=True)
    from histo_lib.core import HistoError
    from histo_lib.kaggle import kernel_config, run_kernel
    try:
        cfg = kernel_config(CONFIG)
        print('[histo] config:', cfg, flush=True)
        res = run_kernel(**cfg, input_root=INPUT, working=WORKING)
    except HistoError as e: sys.exit(f"error: {e}")
    print(f"[histo] done in {time.time()-T0:.1f} s: {res['submission']}", flush=True)

if __name__ == '__main__' or 'KAGGLE_KERNEL_RUN_TYPE' in os.environ: main()
