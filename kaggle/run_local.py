"""Run the Kaggle kernel here, on a synthetic /kaggle/input, in a virtual environment without histo_lib.

    python kaggle/run_local.py [--upload kaggle/_upload] [--root kaggle/_local] [--mode predict] [NAME=VALUE ...]
    python kaggle/run_local.py --notebook [--upload kaggle/_upload] [--root kaggle/_local] [NAME=VALUE ...]

The fake input holds a synthetic competition (`histo_lib.synth.make_synth`), the wheel dataset that
`kaggle/build_upload.py` wrote and, in `--mode predict`, a trained run folder (default: the last local train run's).
The virtual environment sees this Python's packages but not histo_lib, so the kernel installs histo_lib offline from
the bundle, as on Kaggle. NAME=VALUE pairs are kernel settings (EPOCHS=1, CROP=48, MAX_TRAIN=200, ...), passed as
HISTO_<NAME>; the default is a quick EPOCHS=1. Output: ROOT/working (submission.csv, kernel_summary.json, run/).
--notebook runs the notebook kernel (kaggle/histo_notebook.ipynb) instead, in a Jupyter kernel of the same venv; the
executed notebook, pictures included, is ROOT/executed.ipynb.
"""
import sys, argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's histo_lib, installed or not
try:
    from histo_lib.core import HistoError
    from histo_lib.kaggle_upload import run_local
except ImportError as e:  # one line, not a traceback: this Python lacks histo_lib's requirements
    sys.exit(f"error: kaggle/run_local.py needs histo_lib's requirements, and this Python ({sys.executable}) lacks {e.name}: "
             "run it with the project's environment (.venv/bin/python kaggle/run_local.py) or `pip install -e .` first.")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('settings', nargs='*', metavar='NAME=VALUE', help='kernel settings, e.g. EPOCHS=2 CROP=48 (default EPOCHS=1)')
    p.add_argument('--upload', default=str(REPO/'kaggle'/'_upload'), help='what build_upload.py wrote (default kaggle/_upload)')
    p.add_argument('--root', default=str(REPO/'kaggle'/'_local'), help='fake input, working folder and venv (default kaggle/_local)')
    p.add_argument('--mode', choices=('train', 'predict'), default='train', help="the kernel's MODE (default train)")
    p.add_argument('--model', help='predict: a run folder to attach (default: ROOT/working/run, the last local train run)')
    p.add_argument('--n-train', type=int, default=400, help='synthetic training patches (default 400)')
    p.add_argument('--n-test', type=int, default=100, help='synthetic test patches (default 100)')
    p.add_argument('--hide', action='append', metavar='NAME', help="play an image without NAME (repeatable; default: what Kaggle's is not known to have)")
    p.add_argument('--keep-venv', action='store_true', help="reuse the last venv (histo_lib already installed) instead of a fresh one; what it sees is restored to this run's --hide")
    p.add_argument('--notebook', action='store_true', help='run the notebook kernel (kaggle/histo_notebook.ipynb) instead of the script; executed copy: ROOT/executed.ipynb')
    a = p.parse_args(argv)
    bad = [s for s in a.settings if '=' not in s]
    if bad: print(f"error: {bad[0]!r} is not NAME=VALUE (e.g. EPOCHS=2).", file=sys.stderr); return 2
    settings = dict(s.split('=', 1) for s in a.settings) or dict(EPOCHS='1')
    model = None
    if a.notebook and a.mode=='predict': print("error: --notebook trains (the notebook kernel has no predict mode); drop --mode predict.", file=sys.stderr); return 2
    if a.mode=='predict':
        settings.update(MODE='predict', MODEL_DIR='histo-lib-model')
        model = a.model or str(Path(a.root)/'working'/'run')
    try: r = run_local(a.upload, a.root, settings, model, a.n_train, a.n_test, a.hide, not a.keep_venv, REPO/'kaggle'/('histo_notebook.ipynb' if a.notebook else 'histo_kernel.py'))
    except HistoError as e: print(f"error: {e}", file=sys.stderr); return 2
    if r.returncode: print(f"error: the kernel failed (exit {r.returncode}); its log is above.", file=sys.stderr)
    else: print(f"Local kernel run done: {Path(a.root)/'working'}" + (f"; the executed notebook: {Path(a.root)/'executed.ipynb'}" if a.notebook else ''))
    return r.returncode

if __name__ == '__main__': sys.exit(main())
