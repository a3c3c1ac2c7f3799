"""Build the folder to upload as the Kaggle dataset `histo-lib/histo-lib-wheels`.

    python kaggle/build_upload.py kaggle/_upload [--extra NAME ...] [--id OWNER/SLUG]

It holds the histo_lib wheel (built from this repo), wheels of any runtime dependency Kaggle's image lacks
(`histo_lib.release.kaggle_image_pkgs`) plus each `--extra`, and `dataset-metadata.json`. Then upload it with the
printed `kaggle datasets create` (first time) or `kaggle datasets version` command.
"""
import sys, argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's histo_lib, installed or not
from histo_lib.core import HistoError
from histo_lib.kaggle import wheels_dataset
from histo_lib.release import build_bundle

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out', help='folder to fill (e.g. kaggle/_upload)')
    p.add_argument('--extra', action='append', default=[], metavar='NAME', help='also bundle a wheel of NAME (repeatable)')
    p.add_argument('--id', default=wheels_dataset, help=f'Kaggle dataset id, owner/slug (default {wheels_dataset})')
    p.add_argument('--isolation', action='store_true', help="build the wheel in pip's isolated environment (needs network)")
    a = p.parse_args(argv)
    try: res = build_bundle(a.out, REPO, a.extra, a.id, a.isolation)
    except HistoError as e: print(f"error: {e}", file=sys.stderr); return 2
    print(f"Built {a.out}: {', '.join(res['files'])}")
    if res['missing_on_kaggle']: print(f"Bundled dependencies Kaggle's image lacks: {', '.join(res['missing_on_kaggle'])}")
    print(f"Next: kaggle datasets create -p {a.out}   (later uploads: kaggle datasets version -p {a.out} -m 'histo_lib {res['wheel']}')")
    return 0

if __name__ == '__main__': sys.exit(main())
