"""Would more test-time views help? Each run's default dihedral TTA (8 views) against the same 8 views also taken at four
shifted positions (40 views: the patch moved by `--shift` px up, down, left and right, reflect-padded back to 96x96),
logits averaged, scored on the two fixed halves of `recipe.py` (half A chooses, half B reports).

    python bench/tta_probe.py NAME=RUN_DIR ... [--shift 4]      # writes section `tta_probe` of RESULTS.md

A probe, not an option: the library's TTA stays the 8 dihedral views unless this shows a gain on half A worth 5x the cost."""
import argparse, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section
from recipe import valid_pixels, halves, ROOT
from ensemble_probe import logit
from histo_lib.core import set_threads
from histo_lib.infer import predict

def shifted(x:np.ndarray, dy:int, dx:int)->np.ndarray:
    "Patches (n,h,w,c) moved by (dy,dx) px, the uncovered border filled by reflection."
    k = max(abs(dy), abs(dx)); h, w = x.shape[1:3]
    return np.ascontiguousarray(np.pad(x, ((0,0),(k,k),(k,k),(0,0)), mode='reflect')[:, k+dy:k+dy+h, k+dx:k+dx+w])

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('runs', nargs='+', help='NAME=RUN_DIR')
    ap.add_argument('--shift', type=int, default=4); ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    set_threads(a.threads)
    runs = dict(r.split('=', 1) for r in a.runs)
    xv, (y, half) = valid_pixels(); s = a.shift
    tta = lambda d, x: logit(predict([d], x, tta='dihedral', backend='onnx', progress=False))
    rows = []
    for n,d in runs.items():
        base = tta(d, xv)
        more = np.mean([base] + [tta(d, shifted(xv, dy, dx)) for dy,dx in ((s,0),(-s,0),(0,s),(0,-s))], 0)
        rows.append((n, *halves(base, y, half), *halves(more, y, half))); print(*rows[-1], flush=True)
    body = (f"## More test-time views (`tta_probe`)\n\nEach run's dihedral TTA (8 views) against the same views at four {s}-px shifts "
            "as well (40 views, logits averaged; ONNX Runtime), on the fixed halves of the `recipe` section. Runs: "
            + '; '.join(f'`{n}` = {d}' for n,d in runs.items()) + ".\n\n| run | half A, 8 views | half B, 8 views | half A, 40 views | half B, 40 views |\n|---|---|---|---|---|\n"
            + '\n'.join(f'| {n} | {a1:.4f} | {b1:.4f} | {a2:.4f} | {b2:.4f} |' for n,a1,b1,a2,b2 in rows))
    write_section('tta_probe', body)

if __name__=='__main__': main()
