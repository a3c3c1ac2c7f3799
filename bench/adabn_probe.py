"""Would test-time BatchNorm adaptation help on slides the model never saw? Each run's default dihedral TTA, once with the
BatchNorm statistics learnt on train/, once with them recomputed (AdaBN: running means and variances reset, then the
cumulative average over the target images in all 8 dihedral views, no labels) on the half being scored, and once on
the whole of valid/; scored on the two fixed halves of `recipe.py` (half A chooses, half B reports).

    python bench/adabn_probe.py NAME=RUN_DIR ...      # writes section `adabn_probe` of RESULTS.md

A probe, not an option: `predict` keeps the trained statistics unless this shows a gain on half A."""
import argparse, copy, sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section
from recipe import valid_pixels, halves, ROOT
from histo_lib.core import set_threads, keep_freed_memory
from histo_lib.models import load_artefact
from histo_lib.data import to_input, tta_views
from histo_lib.infer import predict

@torch.no_grad()
def adapted(model, cfg:dict, x:np.ndarray, bs:int=128):
    "A copy of `model` whose BatchNorm statistics are those of the pixels `x` (uint8 NHWC), over the 8 dihedral views."
    m = copy.deepcopy(model).eval()
    bns = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    for b in bns: b.reset_running_stats(); b.momentum = None; b.train()  # momentum None: a plain cumulative average
    for s in range(0, len(x), bs):
        for v in tta_views(to_input(x[s:s+bs], cfg['crop'], tuple(cfg['mean']), tuple(cfg['std'])), 'dihedral'): m(v.contiguous())
    return m.eval()

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('runs', nargs='+', help='NAME=RUN_DIR')
    ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    set_threads(a.threads); keep_freed_memory()
    runs = dict(r.split('=', 1) for r in a.runs)
    xv, (y, half) = valid_pixels()
    tta = lambda m, cfg: predict([(m, cfg)], xv, tta='dihedral', backend='torch', progress=False)
    rows = []
    for n,d in runs.items():
        model, cfg = load_artefact(d, torch.device('cpu'))
        own = halves(tta(adapted(model, cfg, xv[half]), cfg), y, half)[0], halves(tta(adapted(model, cfg, xv[~half]), cfg), y, half)[1]
        rows.append((n, *halves(tta(model, cfg), y, half), *own, *halves(tta(adapted(model, cfg, xv), cfg), y, half))); print(*rows[-1], flush=True)
    body = ("## Test-time BatchNorm adaptation (`adabn_probe`)\n\nEach run's dihedral TTA with the BatchNorm statistics learnt "
            "on train/, then with them recomputed (AdaBN) on the scored half alone, then on the whole valid/ (no labels used), "
            "on the fixed halves of the `recipe` section. Runs: " + '; '.join(f'`{n}` = {d}' for n,d in runs.items())
            + ".\n\n| run | half A, trained stats | half B, trained stats | half A, its own stats | half B, its own stats | half A, valid/'s stats | half B, valid/'s stats |\n|---|---|---|---|---|---|---|\n"
            + '\n'.join(f'| {r[0]} | ' + ' | '.join(f'{v:.4f}' for v in r[1:]) + ' |' for r in rows))
    write_section('adabn_probe', body)

if __name__=='__main__': main()
