"""Build the Kaggle uploads, with your Kaggle username filled in once.

    python kaggle/build_upload.py --user YOU [--out kaggle/_upload] [--extra NAME ...]

Writes `OUT/wheels/` (the dataset YOU/histo-lib-wheels: the histo_lib wheel built from this repo, wheels of any requirement
Kaggle's image is not known to have (`histo_lib.kaggle_upload.kaggle_image`) plus each `--extra`, and `dataset-metadata.json`)
`OUT/kernel/` (`histo_kernel.py` and its `kernel-metadata.json`: id YOU/histo-lib-kernel, the wheel dataset attached) and
`OUT/notebook/` (the notebook kernel `histo_notebook.ipynb`, id YOU/histo-lib-notebook, from `kaggle/notebook-metadata.json`),
each checked by `histo_lib.kaggle_upload.check_kernel_metadata`. Then upload them with the printed `kaggle` commands.
"""
import os, sys, argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's histo_lib, installed or not
try:
    from histo_lib.core import HistoError
    from histo_lib.kaggle_upload import build_upload
except ImportError as e:  # one line, not a traceback: this Python lacks histo_lib's requirements
    sys.exit(f"error: kaggle/build_upload.py needs histo_lib's requirements, and this Python ({sys.executable}) lacks {e.name}: "
             "run it with the project's environment (.venv/bin/python kaggle/build_upload.py) or `pip install -e .` first.")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--user', default=os.environ.get('KAGGLE_USERNAME'), help='your Kaggle username (default: $KAGGLE_USERNAME)')
    p.add_argument('--out', default=str(REPO/'kaggle'/'_upload'), help='folder to (re)fill: wheels/, kernel/ and notebook/ (default kaggle/_upload)')
    p.add_argument('--extra', action='append', default=[], metavar='NAME', help='also bundle a wheel of NAME (repeatable)')
    p.add_argument('--isolation', action='store_true', help="build the wheel in pip's isolated environment (needs network)")
    a = p.parse_args(argv)
    try: res = build_upload(a.user, a.out, REPO, a.extra, a.isolation)
    except HistoError as e: print(f"error: {e}", file=sys.stderr); return 2
    print(f"Built {res['wheels']} (dataset {res['wheels_id']}): {', '.join(res['files'])}")
    if res['missing_on_kaggle']: print(f"Bundled requirements Kaggle's image is not known to have: {', '.join(res['missing_on_kaggle'])}")
    print(f"Built {res['kernel']} (kernel {res['kernel_id']}): histo_kernel.py, kernel-metadata.json (checked)")
    print(f"Built {res['notebook']} (kernel {res['notebook_id']}): histo_notebook.ipynb, kernel-metadata.json (checked)")
    print(f"Try them first: python kaggle/run_local.py --upload {res['out']}   (the notebook: add --notebook)")
    print(f"Next: kaggle datasets create -p {res['wheels']}   (later uploads: kaggle datasets version -p {res['wheels']} -m 'histo_lib {res['wheel'].split('-')[1]}')")
    print(f"Then: kaggle kernels push -p {res['kernel']}   (the notebook: kaggle kernels push -p {res['notebook']})")
    return 0

if __name__ == '__main__': sys.exit(main())
