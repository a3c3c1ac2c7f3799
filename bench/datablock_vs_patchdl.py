"""Training images/s of the DataBlock path against the `PatchDL` path it replaced: same model, batch size, threads and pixels.

The old path is the package as it was at commit `--old`, extracted by `git show` into bench/_work/histo_lib_old (its
relative imports keep it whole), so both run in one process on the same in-RAM pcam-sample patches, and rounds
alternate old, new, old, new ... so that the shared machine's load hits both alike. Each round times `--batches`
training batches after `--warm` warm-up ones (validation skipped, progress bar and logging off).

    python bench/datablock_vs_patchdl.py                              # the default grid below
    python bench/datablock_vs_patchdl.py --rounds 5 --batches 40
"""
from __future__ import annotations
import argparse, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
warnings.filterwarnings('ignore')
HERE = Path(__file__).parent; ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _results import write_section
from train_throughput import pixels, _Timer
from histo_lib.core import set_seed
from histo_lib.data import array_dls
from histo_lib.train import histo_learner

def old_package(rev:str)->str:
    "The package at `rev` as `histo_lib_old` under bench/_work (extracted once)."
    d = HERE/'_work'/'histo_lib_old'
    if not (d/'train.py').exists():
        d.mkdir(parents=True, exist_ok=True)
        names = subprocess.run(['git', '-C', str(ROOT), 'ls-tree', '--name-only', rev, 'histo_lib/'], capture_output=True, text=True, check=True).stdout.split()
        for n in names: (d/Path(n).name).write_bytes(subprocess.run(['git', '-C', str(ROOT), 'show', f'{rev}:{n}'], capture_output=True, check=True).stdout)
    sys.path.insert(0, str(d.parent))
    return 'histo_lib_old'

def timed(learn, batches:int, warm:int)->float:
    "Training images/s over `batches` batches after `warm` warm-up ones."
    tm = _Timer(warm)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3, cbs=tm)
    t = tm.t[warm-1:warm+batches]
    return learn.dls.train.bs*(len(t)-1)/(t[-1]-t[0])

def run_old(x, y, bs, crop, mk, cl, bf, a):
    from histo_lib_old.data import patch_dls
    from histo_lib_old.train import make_learner
    set_seed(0); n = bs*(a.batches+a.warm+1)
    dls = patch_dls(x[:n], y[:n], np.arange(n), np.arange(bs), crop=crop, bs=bs, lighting=0., seed=0)
    return timed(make_learner(dls, 'reference', tempfile.mkdtemp(), channels_last=cl, bf16=bf, model_kwargs=mk), a.batches, a.warm)

def run_new(x, y, bs, crop, mk, cl, bf, a):
    set_seed(0); n = bs*(a.batches+a.warm+1)
    dls = array_dls(np.concatenate([x[:n], x[:bs]]), np.concatenate([y[:n], y[:bs]]), np.arange(n, n+bs), crop=crop, bs=bs, lighting=0., seed=0)
    return timed(histo_learner(dls, 'reference', model_kwargs=mk, channels_last=cl, bf16=bf, path=tempfile.mkdtemp()), a.batches, a.warm)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--old', default='db04fc6', help='the commit with the PatchDL path')
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--batches', type=int, default=30); ap.add_argument('--warm', type=int, default=3)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--configs', default='reference:96:2:0,reference:64:2:0,reference:64:1:0,small:96:2:1,small:64:2:1,small:96:1:1,small:64:1:1',
                    help="model:crop:threads:bf16; 'reference' = the reference CNN (2.4M), 'small' = at cpu-best's size; bf16 1 = channels_last+bf16")
    a = ap.parse_args()
    old_package(a.old)
    x, y, src = pixels(a.bs*(a.batches+a.warm+2))
    load0, rows = os.getloadavg()[0], []
    for cfg in a.configs.split(','):
        model, crop, th, bf = cfg.split(':'); crop, th, bf = int(crop), int(th), bf=='1'
        mk = dict(widths=(16,32,64), dense=256) if model=='small' else None
        torch.set_num_threads(th)
        o, n = [], []
        for r in range(a.rounds):
            o.append(run_old(x, y, a.bs, crop, mk, bf, bf, a)); n.append(run_new(x, y, a.bs, crop, mk, bf, bf, a))
        ratio = float(np.median(np.array(n)/np.array(o)))
        rows.append((model, crop, th, 'channels_last+bf16' if bf else 'fp32', np.median(o), np.median(n), ratio, o, n))
        print(f"{model:9s} crop {crop} threads {th} {rows[-1][3]:18s} PatchDL {np.median(o):6.1f}  DataBlock {np.median(n):6.1f} img/s  "
              f"ratio {ratio:.3f}  (rounds {[round(v) for v in o]} / {[round(v) for v in n]})", flush=True)
    load1 = os.getloadavg()[0]
    body = (f"## DataBlock path vs the PatchDL path it replaced (training img/s)\n\n"
            f"One process, {src} patches in RAM, bs {a.bs}, the reference CNN (2.4M) or at cpu-best's size (`small`), {a.batches} timed "
            f"training batches after {a.warm} warm-up per round, {a.rounds} rounds alternating old/new; 'PatchDL' = the package at commit "
            f"{a.old}. Ratio = median of the per-round DataBlock/PatchDL ratios (target >= 0.95). Load average {load0:.1f} at start / "
            f"{load1:.1f} at end (other jobs shared the 2 cores: compare the ratio, not the img/s).\n\n"
            "| model | crop | threads | precision | PatchDL img/s | DataBlock img/s | ratio | rounds (PatchDL / DataBlock) |\n|---|---|---|---|---|---|---|---|\n"
            + '\n'.join(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.3f} | {[round(v) for v in r[7]]} / {[round(v) for v in r[8]]} |" for r in rows))
    write_section('datablock_vs_patchdl', body)

if __name__=='__main__': main()
