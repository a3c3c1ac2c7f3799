"""Draw `samples/pcam-mini/` (the small real PCam set the demo, the tests and the tutorials use) from a pcam-sample folder.

    python samples/draw_pcam_mini.py [SRC] [--out samples/pcam-mini] [--check]

SRC (default ../shared/data/pcam-sample beside the checkout) is an ImageFolder of PCam patches with train/ and valid/,
each holding 0/ and 1/. Only train/ and valid/ are read: never test/ (PCam's test split is kept apart to judge models
by). For each split and class, the files are listed in name order, byte-identical files are reduced to the first of
each group (SHA-1 of the bytes, over the whole of train/ and valid/, so no picture appears twice anywhere in the set),
and N of the rest are drawn without replacement by numpy's generator seeded with SEED. The chosen files are copied
byte for byte (same JPEG, same name). `--check` redraws into a temporary folder and compares it with OUT, file by file.
"""
import argparse, filecmp, hashlib, shutil, sys, tempfile
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent
SEED, SIZES = 33, dict(train=1000, valid=250)  # patches per class in each split

def unique_files(src:Path)->dict:
    "(split, label) -> the files of `src/split/label`, name order, the first of each byte-identical group only."
    seen, res = set(), {}
    for split in SIZES:
        for lbl in '01':
            keep = []
            for f in sorted((src/split/lbl).glob('*.jpg')):
                h = hashlib.sha1(f.read_bytes()).hexdigest()
                if h not in seen: seen.add(h); keep.append(f)
            res[split, lbl] = keep
    return res

def draw(src:Path, out:Path):
    "Copy the seeded, class-balanced, duplicate-free draw from `src` into `out` (which must not exist)."
    rng = np.random.default_rng(SEED)
    for (split, lbl), files in unique_files(src).items():
        if len(files) < SIZES[split]: sys.exit(f"{src/split/lbl}: {len(files)} unique files, fewer than the {SIZES[split]} to draw")
        (out/split/lbl).mkdir(parents=True)
        for i in sorted(rng.choice(len(files), SIZES[split], replace=False)): shutil.copyfile(files[i], out/split/lbl/files[i].name)

def same_tree(a:Path, b:Path)->list:
    "The image paths (relative) that differ between `a` and `b`, or exist in only one."
    fa, fb = ({p.relative_to(d) for d in [d] for p in d.glob('*/*/*.jpg')} for d in (a, b))
    return sorted(map(str, fa ^ fb)) + [str(p) for p in sorted(fa & fb) if not filecmp.cmp(a/p, b/p, shallow=False)]

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src', nargs='?', default=HERE.parents[1]/'shared'/'data'/'pcam-sample', type=Path)
    p.add_argument('--out', default=HERE/'pcam-mini', type=Path)
    p.add_argument('--check', action='store_true', help='redraw into a temporary folder and compare with OUT')
    a = p.parse_args()
    if not (a.src/'train').is_dir(): sys.exit(f"{a.src} has no train/: give the pcam-sample folder")
    if a.check:
        with tempfile.TemporaryDirectory() as d:
            draw(a.src, Path(d)/'x'); diff = same_tree(Path(d)/'x', a.out)
        sys.exit(f"{a.out} differs from a fresh draw in {len(diff)} files, e.g. {diff[:3]}" if diff else print(f"{a.out} is the draw, file for file"))
    if any(a.out.glob('*/*/*.jpg')):
        for split in SIZES: shutil.rmtree(a.out/split, ignore_errors=True)
    draw(a.src, a.out)
    n = sum(1 for _ in a.out.glob('*/*/*.jpg')); mb = sum(f.stat().st_size for f in a.out.glob('*/*/*.jpg'))/1e6
    print(f"{a.out}: {n} patches, {mb:.1f} MB")
