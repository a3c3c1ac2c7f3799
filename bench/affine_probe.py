"""Would any-angle rotation and zoom help cpu-best? fastai's own affine augmentation (`aug_transforms`: rotation up to
`--rotate` degrees, zoom `--zoom` each way, reflection padding, bilinear, one resampling per batch) added to cpu-best's
training batches after its dihedral views and colour jitter; scored on the two fixed halves of `recipe.py` (half A
chooses, half B reports).

    python bench/affine_probe.py train RUN_DIR --seed 42 [--rotate 180 --zoom 0.1]   # cpu-best + the affine batches
    python bench/affine_probe.py score NAME=RUN_DIR ... [--conditions TEXT]          # writes section `affine_probe`

A probe, not an option: the library's training batches keep the exact dihedral views unless this shows a gain on half A."""
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section
from recipe import valid_pixels, halves, cpu_best_tta, ROOT
import histo_lib.data as hd
from fastai.vision.augment import aug_transforms
from histo_lib.core import load_settings, set_threads
from histo_lib.train import train, recipe_params
from histo_lib.infer import predict

def with_affine(rotate:float, zoom:float):
    "`histo_tfms` with fastai's affine batch transform before the normalisation, on training batches only."
    orig = hd.histo_tfms
    def tfms(stats, crop=64, shift=0, lighting=0.1, stain_aug=0., aug=True):
        t = orig(stats, crop, shift, lighting, stain_aug, aug)
        if not aug: return t
        return t[:-1] + aug_transforms(do_flip=False, max_rotate=rotate, min_zoom=1-zoom, max_zoom=1+zoom, max_lighting=0.,
                                       max_warp=0., p_affine=1., pad_mode='reflection') + t[-1:]
    return tfms

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('cmd', choices=('train', 'score')); ap.add_argument('runs', nargs='+')
    ap.add_argument('--seed', type=int, default=42); ap.add_argument('--rotate', type=float, default=180.)
    ap.add_argument('--zoom', type=float, default=0.1); ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--conditions', default='', help='how the runs were trained (threads, runs at a time), for the section')
    a = ap.parse_args()
    if not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    set_threads(a.threads)
    if a.cmd=='train':
        hd.histo_tfms = with_affine(a.rotate, a.zoom)
        out = Path(a.runs[0]); train(str(ROOT), out, **{**recipe_params(load_settings(None, 'cpu-best')), 'seed': a.seed})
        (out/'affine.json').write_text(json.dumps(dict(rotate=a.rotate, zoom=a.zoom, seed=a.seed)))
        return
    runs = dict(r.split('=', 1) for r in a.runs)
    xv, (y, half) = valid_pixels(); rows = []
    for n,d in runs.items():
        aff, tr = json.loads((Path(d)/'affine.json').read_text()), json.loads((Path(d)/'model.json').read_text())['train']
        p = lambda tta: predict([d], xv, tta=tta, backend='onnx', progress=False)
        rows.append((n, aff['rotate'], aff['zoom'], aff['seed'], *halves(p('none'), y, half), *halves(p('dihedral'), y, half), tr['seconds']/60))
        print(*rows[-1], flush=True)
    body = ("## Any-angle rotation and zoom (`affine_probe`)\n\ncpu-best trained with fastai's affine batch augmentation on top "
            "of its own (`python bench/affine_probe.py train RUN --seed N`"
            + (f"; {a.conditions}" if a.conditions else '') + "), on the fixed halves of the `recipe` section; compare with cpu-best's rows there "
            "(with TTA, " + ', '.join(f'seed {sd}: {cpu_best_tta(sd)}' for sd in sorted({r[3] for r in rows})) + "). Runs: "
            + '; '.join(f'`{n}` = {d}' for n,d in runs.items()) + ".\n\n| run | rotate (deg) | zoom | seed | half A | half B | half A, TTA | half B, TTA | train() min |\n|---|---|---|---|---|---|---|---|---|\n"
            + '\n'.join(f'| {r[0]} | {r[1]:.0f} | {r[2]} | {r[3]} | ' + ' | '.join(f'{v:.4f}' for v in r[4:8]) + f' | {r[8]:.1f} |' for r in rows))
    write_section('affine_probe', body)

if __name__=='__main__': main()
