"""What would averaging finished runs give? Each run's dihedral-TTA logits on valid/, averaged in pairs (as `Members`
averages its members' logits), scored on the two fixed halves of `recipe.py` (half A chooses, half B reports).

    python bench/ensemble_probe.py NAME=RUN_DIR NAME=RUN_DIR ...   # writes section `ensemble_probe` of RESULTS.md

A probe, not a recipe: two runs cost two runs' time, which the row says; `Members` trains such an ensemble as one model."""
import argparse, itertools, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section
from recipe import valid_pixels, halves, ROOT
from histo_lib.core import set_threads
from histo_lib.infer import predict

def logit(p): p = np.clip(p, 1e-7, 1-1e-7); return np.log(p/(1-p))

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('runs', nargs='+', help='NAME=RUN_DIR'); ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    set_threads(a.threads)
    runs = dict(r.split('=', 1) for r in a.runs)
    xv, (y, half) = valid_pixels()
    lg = {n: logit(predict([d], xv, tta='dihedral', backend='torch', progress=False)) for n,d in runs.items()}
    rows = [(n, *halves(l, y, half)) for n,l in lg.items()]
    rows += [(f'{m} + {n}', *halves((lg[m]+lg[n])/2, y, half)) for m,n in itertools.combinations(lg, 2)]
    for r in rows: print(*r, flush=True)
    body = ("## Averaging finished runs (`ensemble_probe`)\n\nEach run's dihedral-TTA logits on valid/, alone and averaged in pairs "
            "(as `Members` averages its members), on the fixed halves of the `recipe` section. Runs: "
            + '; '.join(f'`{n}` = {d}' for n,d in runs.items()) + ".\n\n| run(s) | half A TTA AUC (choose) | half B TTA AUC (report) |\n|---|---|---|\n"
            + '\n'.join(f'| {n} | {a_:.4f} | {b_:.4f} |' for n,a_,b_ in rows))
    write_section('ensemble_probe', body)

if __name__=='__main__': main()
