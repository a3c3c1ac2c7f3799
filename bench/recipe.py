"""Recipe search on pcam-sample: train named variants on train/ (validation = valid/), then score valid/ and its two fixed
halves (A: where variants are chosen; B: the estimate no choice has seen) with and without dihedral TTA. Every variant ever run is kept in bench/recipe_rows.json and the whole table is rewritten
into the `recipe` section of bench/RESULTS.md.

    HISTO_CACHE=/work/cache python bench/recipe.py ref48_e2 mnv3_64_e3      # run these variants
    python bench/recipe.py --settings cpu-best                              # the [cpu-best] section of settings.ini
    python bench/recipe.py --settings cpu-best m2_e20 --settings-file bench/issue16_variants.ini --seed 43   # rows settings:NAME_seed43
    python bench/recipe.py --list
    python bench/recipe.py --score RUN_DIR --name cli:cpu-best --time-log LOG   # add a run trained by `histo train`
    python bench/recipe.py --merge ROWS.json                                # add rows trained elsewhere (bench/gpu_recipe.sh)

`n_train` < 20000 trains on a seeded, class-balanced subsample of train/ (for short exploration runs); valid/ is always
the full 3,000. Only train/ and valid/ are ever read. HISTO_PCAM moves the data folder (default ../shared/data/pcam-sample)
and HISTO_RECIPE_ROWS the rows file, so that several processes (e.g. on a GPU machine) can each run a share of the
variants; every row records the device it was trained on and its training GFLOP per image, from which the table
estimates the wall time the same recipe needs on the 2-core CPU machine.
"""
from __future__ import annotations
import argparse, json, os, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings('ignore')
from _results import write_section
from sklearn.metrics import roc_auc_score
from histo_lib.core import load_settings, set_threads, packaged_settings
from histo_lib.data import load_items, decode_items
from histo_lib.train import train, run_params, recipe_params
from histo_lib.infer import predict
from torch.utils.flop_counter import FlopCounterMode
from fastai.callback.core import Callback
from fastai.torch_core import find_bs

ROOT = Path(os.environ.get('HISTO_PCAM') or Path(__file__).resolve().parents[2]/'shared'/'data'/'pcam-sample')
ROWS = Path(os.environ.get('HISTO_RECIPE_ROWS') or Path(__file__).parent/'recipe_rows.json')
WORK = Path(__file__).parent/'_work'
RUNS = Path(os.environ.get('HISTO_CACHE') or '/tmp')/'recipes'
SMALL = dict(widths=(16,32,64), dense=256)
CPU_BEST = dict(arch='reference', crop=64, bs=64, epochs=14, lr=2e-3, ema=0.998, lighting=0.1, model_kwargs=SMALL)
def cb(**kw): return {**CPU_BEST, **kw}  # a variant of the [cpu-best] recipe

VARIANTS = {
    # the reference point: a small plain CNN, crop 48, 2 epochs
    'ref48_small_e2':  dict(arch='reference', crop=48, epochs=2, lr=2e-3, bs=64, model_kwargs=SMALL),
    'ref48_e2':        dict(arch='reference', crop=48, epochs=2, lr=2e-3, bs=64),
    'ref32_e3':        dict(arch='reference', crop=32, epochs=3, lr=2e-3, bs=64),
    'ref64_small_e2':  dict(arch='reference', crop=64, epochs=2, lr=2e-3, bs=64, model_kwargs=SMALL),
    'ref48_small_e4':  dict(arch='reference', crop=48, epochs=4, lr=2e-3, bs=64, model_kwargs=SMALL),
    'ref48_small_e4_ema': dict(arch='reference', crop=48, epochs=4, lr=2e-3, bs=64, model_kwargs=SMALL, ema=0.998),
    'ref48_small_e4_ls':  dict(arch='reference', crop=48, epochs=4, lr=2e-3, bs=64, model_kwargs=SMALL, label_smoothing=0.1),
    'ref48_small_e4_lr5': dict(arch='reference', crop=48, epochs=4, lr=5e-3, bs=64, model_kwargs=SMALL),
    'ref48_small_e4_nolight': dict(arch='reference', crop=48, epochs=4, lr=2e-3, bs=64, model_kwargs=SMALL, lighting=0.),
    'ref48_small_e4_light2':  dict(arch='reference', crop=48, epochs=4, lr=2e-3, bs=64, model_kwargs=SMALL, lighting=0.2),
    'ref48_small_e3':  dict(arch='reference', crop=48, epochs=3, lr=2e-3, bs=64, model_kwargs=SMALL),
    'ref48_small_e3_repeat': dict(arch='reference', crop=48, epochs=3, lr=2e-3, bs=64, model_kwargs=SMALL),  # reproducibility
    'ref48_small_e3_ema': dict(arch='reference', crop=48, epochs=3, lr=2e-3, bs=64, model_kwargs=SMALL, ema=0.998),
    'mnv3_64_e3':      dict(arch='mobilenetv3_small_100', crop=64, epochs=3, lr=5e-3, bs=64),
    'mnv3_96_e3':      dict(arch='mobilenetv3_small_100', crop=96, epochs=3, lr=5e-3, bs=64),
    'r18_48_e2':       dict(arch='resnet18', crop=48, epochs=2, lr=2e-3, bs=64),
    'effb0_48_e2':     dict(arch='efficientnet_b0', crop=48, epochs=2, lr=3e-3, bs=64),
    # variants of cpu-best (first swept on a GPU: same recipe, different arithmetic, so compare with the `cb` row there)
    'cb':              cb(),
    'cb_shift8':       cb(shift=8),
    'cb_shift16':      cb(shift=16),
    'cb_e28':          cb(epochs=28),
    'cb_shift8_e28':   cb(shift=8, epochs=28),
    'cb_c96':          cb(crop=96),
    'cb_c80_shift8':   cb(crop=80, shift=8),
    'cb_w24':          cb(model_kwargs=dict(widths=(24,48,96), dense=256)),
    'cb_w24_shift8':   cb(model_kwargs=dict(widths=(24,48,96), dense=256), shift=8),
    'cb_d3':           cb(model_kwargs=dict(widths=(16,32,64), dense=256, depth=3)),
    'cb_ls01':         cb(label_smoothing=0.1),
    'cb_lr4':          cb(lr=4e-3),
    'cb_bs32':         cb(bs=32),
    'cb_light2_shift8': cb(lighting=0.2, shift=8),
    'cb_wd05':         cb(wd=0.05),
    'cb_c96_e10':      cb(crop=96, epochs=10),
    'cb_c88_shift4':   cb(crop=88, shift=4),
    'cb_c96_ls01':     cb(crop=96, label_smoothing=0.1),
    'cb_c96_e10_lr4':  cb(crop=96, epochs=10, lr=4e-3),
    'cb_c80_shift8_e18': cb(crop=80, shift=8, epochs=18),
    'r18_c64_shift8':  cb(arch='resnet18', model_kwargs={}, shift=8),
    'ref_c96_shift8_e20': cb(crop=96, shift=8, epochs=20, model_kwargs={}),  # the full 2.4M reference CNN: a GPU-only ceiling
}

def subsample(n:int, seed:int=0)->Path:
    "A balanced, seeded subsample of train/ as an items CSV (id,src,label)."
    fn = WORK/f'train_sub{n}_s{seed}.csv'
    if not fn.exists():
        items = load_items(ROOT, 'train')
        idx = np.concatenate([np.random.default_rng(seed).choice(np.where(items.label==c)[0], n//2, replace=False) for c in (0,1)])
        WORK.mkdir(exist_ok=True); items.iloc[np.sort(idx)].to_csv(fn, index=False)
    return fn

def train_gflop(model, crop:int)->float:
    "GFLOP of one training image (forward + backward) at `crop`."
    model = model.cpu().train(); x = torch.randn(4, 3, crop, crop)
    with FlopCounterMode(display=False) as fc: model(x).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()/4/1e9

def device_name()->str: return torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'

HALF_SEED = 0  # fixed once: never change it, or half B stops being untouched

def half_a(items:pd.DataFrame)->np.ndarray:
    "True for the items of valid/ in half A (where variants are chosen), False for half B (reported): fixed, stratified."
    y = items['label'].values
    order = np.argsort(items['src'].map(lambda p: Path(str(p)).name).values, kind='stable')  # by file name: independent of listing order
    rng, half = np.random.default_rng(HALF_SEED), np.zeros(len(y), bool)
    for c in (0, 1):
        idx = order[y[order]==c]
        half[rng.permutation(idx)[:len(idx)//2]] = True
    return half

def valid_pixels():
    "valid/ pixels, labels, and its fixed halves (`half_a`)."
    items = load_items(ROOT, 'valid'); x, items = decode_items(items, progress=False)
    return np.asarray(x), (items['label'].values, half_a(items))

# cpu-best's own runs by seed (rows of recipe_rows.json): what a probe of one of its variants compares with
CPU_BEST_ROWS = {42: 'cli:cpu-best_keep_last_keep_freed', 43: 'cli:cpu-best_seed43_1thr_pair', 44: 'cli:cpu-best_seed44_1thr_pair',
                 45: 'cli:cpu-best_seed45', 46: 'cli:cpu-best_seed46'}

def cpu_best_tta(seed:int)->str:
    "cpu-best's half A / half B AUC with dihedral TTA for `seed`, read from its row, as text."
    r = next(r for r in json.loads(ROWS.read_text()) if r['name']==CPU_BEST_ROWS[seed])
    return f"{r['A_tta_auc']:.4f} / {r['B_tta_auc']:.4f}"

def halves(p, y, half)->tuple:
    "ROC AUC of probabilities (or logits) `p` on half A and on half B, to 4 decimals."
    return round(roc_auc_score(y[half], p[half]), 4), round(roc_auc_score(y[~half], p[~half]), 4)

def aucs_of(run_dir:Path, xv, yv)->dict:
    "AUC on the whole valid/ and on each half, with and without the default dihedral TTA."
    y, half = yv; res = {}
    for tta, key in (('none', 'valid_auc'), ('dihedral', 'tta_auc')):
        p = predict([run_dir], xv, tta=tta, backend='torch', progress=False)
        res[key] = round(roc_auc_score(y, p), 4)
        res[f'A_{key}'], res[f'B_{key}'] = halves(p, y, half)
    return res

class TrainPhaseTimes(Callback):
    "Images and wall seconds of each epoch's training phase (validation left out), for a steady-state training img/s."
    def __init__(self): self.n, self.secs = [], []  # not before_fit: `Learner.validate` sends that event too
    def before_train(self): _sync(); self.n.append(0); self.t = time.perf_counter()
    def after_batch(self):
        if self.training: self.n[-1] += find_bs(self.learn.yb)
    def after_train(self): _sync(); self.secs.append(time.perf_counter()-self.t)
    def img_s(self)->int: k = min(1, len(self.secs)-1); return round(sum(self.n[k:])/sum(self.secs[k:]))  # epoch 1 (warm-up) left out

def _sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()

def run(name:str, kw:dict, n_train:int, xv, yv)->dict:
    kw = dict(kw); out = RUNS/name
    data = ROOT if n_train>=20000 else subsample(n_train)
    t, tpt = time.time(), TrainPhaseTimes()
    learn = train(data, out, cbs=[tpt], **{'patience': 0, **kw, 'valid': str(ROOT)})
    secs = time.time()-t
    aucs = aucs_of(out, xv, yv)
    hist = pd.read_csv(out/'history.csv')
    row = dict(name=name, n_train=n_train, **{k: str(v) for k,v in kw.items()}, train_s=round(secs), **aucs, epoch_aucs=[round(a, 4) for a in hist.roc_auc], load=round(os.getloadavg()[0], 1),
               params=json.loads((out/'model.json').read_text())['n_params'], device=device_name(), train_img_s=tpt.img_s(),
               train_gflop=round(train_gflop(learn.model, learn.dls.crop), 4))
    print(json.dumps(row), flush=True)
    return row

def score(run_dir:Path, name:str, xv, yv, time_log:str|None=None)->dict:
    "A row for a run trained elsewhere (e.g. by `histo train --recipe ...`), with `/usr/bin/time -v` wall time if logged."
    import re
    cfg = json.loads((Path(run_dir)/'model.json').read_text()); tr = cfg['train']
    aucs = aucs_of(Path(run_dir), xv, yv)
    hist = pd.read_csv(Path(run_dir)/'history.csv')
    wall = None
    if time_log:
        m = re.search(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)', Path(time_log).read_text(errors='ignore'))
        if m: wall = sum(float(v)*60**i for i,v in enumerate(reversed(m.group(1).split(':'))))
    row = dict(name=name, n_train=tr.get('n_train', 0), arch=cfg['arch'], crop=str(cfg['crop']), epochs=str(tr['epochs']), lr=str(tr['lr']),
               bs=str(tr['bs']), model_kwargs=str(cfg['model_kwargs']), train_s=round(tr['seconds']),
               **{k: str(tr[k]) for k in ('ema','label_smoothing','shift','lighting','stain_aug','mixup','keep','wd','bf16','channels_last') if tr.get(k) not in (None, 0, False, 'best')},
               **({'process_wall_s': round(wall)} if wall else {}), **aucs,
               epoch_aucs=[round(a, 4) for a in hist.roc_auc], load=round(os.getloadavg()[0], 1), params=cfg['n_params'])
    print(json.dumps(row), flush=True)
    return row

CPU_REF = ('cli:cpu-best_e14_ema', 778)  # the cpu-best run measured on the 2-core machine: its row and train seconds

def cpu_gflops()->float:
    "Training GFLOP/s that the 2-core machine sustained on the cpu-best recipe (FLOPs x images / measured wall time)."
    from histo_lib.models import build_model
    return train_gflop(build_model('reference', **SMALL), 64)*20000*14/CPU_REF[1]

def est_cpu_min(r, rate)->str:
    "FLOP-proportional estimate of the row's training wall time on the 2-core machine (measured there for cpu rows)."
    if 'train_gflop' not in r: return '-'
    return f"{r['train_gflop']*r['n_train']*int(r.get('epochs') or 0)/rate/60:.0f}"

def table(rows, rate:float)->str:
    hdr = ("| variant | device | n_train | arch | crop | epochs | lr | extra | params | train s | est. 2-core min | valid AUC | TTA AUC (dihedral) | "
           "half A TTA AUC (choose) | half B TTA AUC (report) | AUC per epoch | load |\n" + "|---"*17 + "|\n")
    std = {'arch','crop','epochs','lr','name','n_train','train_s','valid_auc','tta_auc','epoch_aucs','load','params','device','train_gflop',
           'A_valid_auc','B_valid_auc','A_tta_auc','B_tta_auc'}
    half = lambda r, k: f"{r[k]:.4f}" if k in r else '-' 
    dflt = load_settings(packaged_settings)  # a settings recipe's row holds every key: its extras are those unlike [DEFAULT]
    return hdr + '\n'.join(f"| {r['name']} | {r.get('device', 'cpu')} | {r['n_train']} | {r.get('arch')} | {r.get('crop')} | {r.get('epochs')} | {r.get('lr')} | "
                           f"{', '.join(f'{k}={v}' for k,v in r.items() if k not in std and str(v)!=dflt.get(k))} | {r['params']/1e6:.2f}M | {r['train_s']} | {est_cpu_min(r, rate)} | "
                           f"{r['valid_auc']:.4f} | {r['tta_auc']:.4f} | {half(r, 'A_tta_auc')} | {half(r, 'B_tta_auc')} | {' '.join(map(str, r['epoch_aucs']))} | {r['load']} |" for r in rows)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('variants', nargs='*'); ap.add_argument('--n-train', type=int, default=20000)
    ap.add_argument('--settings', nargs='+', default=[], help='run recipe sections of settings.ini instead (e.g. cpu-best)')
    ap.add_argument('--settings-file', default=None, help='an ini whose sections --settings may also name (e.g. bench/issue16_variants.ini)')
    ap.add_argument('--seed', type=int, default=None, help="override each --settings recipe's seed (the row's name says so)")
    ap.add_argument('--epochs', type=int, default=None, help="override each --settings recipe's epochs, e.g. for a short throughput probe")
    ap.add_argument('--threads', type=int, default=None); ap.add_argument('--list', action='store_true')
    ap.add_argument('--score', default=None, help='a finished run folder to score and add as a row (with --name)')
    ap.add_argument('--name', default=None); ap.add_argument('--time-log', default=None, help='log holding `/usr/bin/time -v` output')
    ap.add_argument('--merge', default=None, help='a rows file written elsewhere (e.g. by bench/gpu_recipe.sh on a GPU): add its rows')
    a = ap.parse_args()
    if a.list: print('\n'.join(f'{k}: {v}' for k,v in VARIANTS.items())); return
    set_threads(a.threads)
    todo = {n: VARIANTS[n] for n in a.variants}
    over = {k:v for k,v in (('seed', a.seed), ('epochs', a.epochs)) if v is not None}
    for rcp in a.settings:  # the recipe exactly as `histo train --recipe` runs it, but for the overrides its row's name spells
        todo[f'settings:{rcp}' + ''.join(f'_{k}{v}' for k,v in over.items())] = {**recipe_params(load_settings(a.settings_file or packaged_settings, rcp)), **over}
    if (todo or a.score) and not ROOT.exists(): sys.exit(f'{ROOT} is absent.')
    xv, yv = valid_pixels() if todo or a.score else (None, None)
    fn = ROWS  # every variant ever run: the table is rebuilt from it
    jobs = [(n, lambda n=n, kw=kw: run(n, kw, a.n_train, xv, yv)) for n,kw in todo.items()]
    if a.score: jobs.append((a.name or Path(a.score).name, lambda: score(Path(a.score), a.name or Path(a.score).name, xv, yv, a.time_log)))
    jobs += [(r['name'], lambda r=r: r) for r in (json.loads(Path(a.merge).read_text()) if a.merge else [])]
    rows = json.loads(fn.read_text()) if fn.exists() else []  # no variants given: just re-render the table
    for name, job in jobs:
        row = job()
        rows = json.loads(fn.read_text()) if fn.exists() else []  # re-read: other runs may have added rows meanwhile
        rows = [r for r in rows if (r['name'], r['n_train'])!=(name, row['n_train'])] + [row]
        fn.write_text(json.dumps(rows, indent=1))
    rate = cpu_gflops()
    body = ("## Recipe search on pcam-sample (train/ 20k or a balanced subsample; scored on valid/ 3k, slide-disjoint, and its two fixed halves)\n\n"
            "**Protocol (issue 16).** valid/ is cut once into two fixed halves of 1,500 patches (stratified by label, seeded "
            f"{HALF_SEED}, by file name; `valid_pixels`): variants are compared and the recipe chosen on **half A** only; "
            "**half B**, which no choice looked at, is the estimate to report. Rows from before the halves existed show '-' there "
            "(those recipes were chosen on the whole of valid/). Runs with `keep=last` end with their last weights, so valid/ "
            "chose nothing inside them either; older rows kept the best epoch by valid AUC.\n\n"
            "valid AUC: the saved model, no TTA; TTA AUC: mean of the 8 dihedral views (the default). "
            "train s: wall seconds of `train()` incl. data loading on the shared 2-core machine (load = 1-min load average "
            "at the end; other jobs shared the cores, so times are upper bounds). One torch thread per run: with 2 threads on the "
            "oversubscribed cores torch spin-waits and trains ~3x slower (reference CNN crop 64: 8.6 vs 26.5 img/s at load 5). "
            "`cli:` rows are `histo train ... --recipe cpu-best` runs scored afterwards (`process_wall_s`: `/usr/bin/time -v` of the "
            "whole command). `*_repeat` reruns a variant with the same seed to check reproducibility.\n\n"
            "`device` NVIDIA H200 rows are the `cb*` sweep of cpu-best variants (same code, data and seed; 6 variants trained at "
            "once, so their train s are not speeds): the GPU ran in 2 x 7 minutes what would take the 2-core machine about 4.5 hours at float32 speed. "
            "Its `cb` row (the earlier crop-64 cpu-best) reproduces the CPU run `cli:cpu-best_e14_ema` (0.9253/0.9317 vs 0.9213/0.9309). "
            "The `settings:kaggle-gpu*` H200 rows (2026-11-27, `bash bench/gpu_recipe.sh`) each ran alone on the GPU, so their train s and "
            "`train_img_s` (training phase only, epoch 1 left out) are speeds: the Kaggle kernel's default recipe, which is cpu-best's, on the sample. "
            "In the same call a wave of eight 20-epoch runs at once (cpu-best seeds 42-45, `m2_e20` and `ref4_e20` of "
            "bench/issue16_variants.ini seeds 42-43) trained at ~900 img/s each and was stopped at its 390 s limit after epoch 14-16, so "
            "it left no rows; its logs give the whole valid/ AUC without TTA after epoch 14 of 20, which includes half B, so nothing was "
            "chosen on it: cpu-best seeds 42-45 0.9486 / 0.9438 / 0.9475 / 0.9498 (mean 0.9474), two members 0.9533 / 0.9470 (mean 0.9502), "
            "four conv blocks 0.9526 / 0.9454 (mean 0.9490). Seed 42 of that wave matched the run alone epoch for epoch. `est. 2-core min`: the row's training "
            f"FLOPs at the float32 rate the 2-core machine sustained on cpu-best ({rate:.0f} GFLOP/s); bfloat16 autocast "
            "(`bf16`) trains ~2.6x faster than that on this AMX-capable CPU (section `train_precision`).\n\n" + table(rows, rate))
    write_section('recipe', body)

if __name__=='__main__': main()
