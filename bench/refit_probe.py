"""What does a refit (`refit = true`: the validation items train too) give? cpu-best trained on train/ plus half A of
valid/ (half A as the validation items, refitted), then scored on half B, which it never trained on, and on half A.

    python bench/refit_probe.py RUN_DIR [--seed 42]      # trains, scores, writes section `refit_probe` of RESULTS.md
    python bench/refit_probe.py RUN_DIR --score-only     # scores a run it trained before

Caveat the section repeats: PCam's valid/ split holds other slides than train/, but its two halves are cut by patch, so
they share slides. A gain on half B is a gain on slides the refit has seen patches of, not on slides never seen."""
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section
from recipe import valid_pixels, halves, half_a, cpu_best_tta, ROOT, WORK
from histo_lib.core import load_settings, set_threads
from histo_lib.data import load_items
from histo_lib.train import train, recipe_params
from histo_lib.infer import predict

def half_a_csv()->Path:
    "Half A of valid/ as an items CSV (id,src,label): the refit's validation items."
    items = load_items(ROOT, 'valid'); fn = WORK/'valid_half_a.csv'
    WORK.mkdir(exist_ok=True); items[half_a(items)][['id','src','label']].to_csv(fn, index=False)
    return fn

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('run'); ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--score-only', action='store_true'); ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    set_threads(a.threads); run = Path(a.run)
    if not a.score_only:
        p = {**recipe_params(load_settings(None, 'cpu-best')), 'seed': a.seed, 'refit': True}
        train(str(ROOT), run, valid=str(half_a_csv()), **p)
    tr = json.loads((run/'model.json').read_text())['train']
    xv, (y, half) = valid_pixels()
    (a0, b0), (a1, b1) = (halves(predict([run], xv, tta=t, backend='onnx', progress=False), y, half) for t in ('none', 'dihedral'))
    print(a0, b0, a1, b1, flush=True)
    body = ("## Refit on train/ and half A (`refit_probe`)\n\ncpu-best with `refit = true`, its validation items half A of "
            f"valid/: {tr['n_train']:,} training patches (train/ and half A), seed {tr['seed']}, {tr['seconds']/60:.1f} min in `train()` "
            "(trained by `python bench/refit_probe.py RUN`, scored by the same script; the stamp names the last call). "
            f"Without the refit, cpu-best seed {tr['seed']} scores {cpu_best_tta(tr['seed'])} (half A / half B) with TTA (`recipe` section).\n\n"
            "| scored on | AUC | AUC, dihedral TTA |\n|---|---|---|\n"
            f"| half B (never trained on) | {b0:.4f} | {b1:.4f} |\n| half A (trained on) | {a0:.4f} | {a1:.4f} |\n\n"
            "The halves are cut by patch from PCam's valid split, so they share slides: half B's gain is on slides the refit "
            "saw other patches of, **not an estimate for slides never seen**, which no split here can give (the sample has no slide ids).")
    write_section('refit_probe', body)

if __name__=='__main__': main()
