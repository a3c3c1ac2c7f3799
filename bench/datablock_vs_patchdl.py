"""Training images/s of the DataBlock path against the `PatchDL` path it replaced, same model, batch size, threads and data.

The old path lives in an earlier commit, so each side runs `bench/train_throughput.py` from its own checkout (a git
worktree of `--old`, made under bench/_work/) in a fresh process; rounds alternate old, new, old, new ... so that the
shared machine's load hits both alike. Each process times `--batches` training batches after `--warm` warm-up ones.

    python bench/datablock_vs_patchdl.py                       # reference CNN and cpu-best's, crop 96 and 64, 1 and 2 threads
    python bench/datablock_vs_patchdl.py --rounds 5 --batches 30
"""
from __future__ import annotations
import argparse, os, re, subprocess, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section

ROOT = Path(__file__).parents[1]

def checkout(rev:str)->Path:
    "A worktree of `rev` under bench/_work (made once)."
    d = ROOT/'bench'/'_work'/f'old-{rev[:10]}'
    if not d.exists(): subprocess.run(['git', '-C', str(ROOT), 'worktree', 'add', '--detach', str(d), rev], check=True, capture_output=True)
    return d

def one(tree:Path, arch:str, crop:int, threads:int, small:bool, variant:str, a)->float:
    "fastai img/s printed by `tree`'s train_throughput.py for one configuration (one round)."
    args = [sys.executable, str(tree/'bench'/'train_throughput.py'), '--archs', arch, '--crops', str(crop), '--threads', str(threads),
            '--rounds', '1', '--batches', str(a.batches), '--warm', str(a.warm), '--variants', variant, '--section', '_scratch']
    env = {**os.environ, 'PYTHONPATH': str(tree), 'OMP_NUM_THREADS': str(threads), 'HISTO_BENCH_RESULTS': str(ROOT/'bench'/'_work'/'scratch.md')}
    out = subprocess.run(args + (['--small'] if small else []), capture_output=True, text=True, env=env, cwd=tree).stdout
    return float(re.search(r'fastai\s+([\d.]+) img/s', out).group(1))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--old', default='db04fc6', help='the commit with the PatchDL path')
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--batches', type=int, default=20); ap.add_argument('--warm', type=int, default=3)
    ap.add_argument('--configs', default='reference:96:2:0,reference:64:2:0,small:96:2:1,small:64:2:1,small:96:1:1,small:64:1:1',
                    help="arch:crop:threads:bf16, arch 'small' = the reference CNN at cpu-best's size")
    a = ap.parse_args()
    old = checkout(a.old); load0 = os.getloadavg()[0]; rows = []
    for cfg in a.configs.split(','):
        arch, crop, th, bf = cfg.split(':'); small = arch=='small'
        variant = 'channels_last+bf16' if bf=='1' else 'default'
        o, n = [], []
        for r in range(a.rounds):
            o.append(one(old, 'reference', int(crop), int(th), small, variant, a)); n.append(one(ROOT, 'reference', int(crop), int(th), small, variant, a))
        ratio = np.median(np.array(n)/np.array(o))
        rows.append((arch, crop, th, variant, np.median(o), np.median(n), ratio, o, n))
        print(f"{arch:9s} crop {crop} threads {th} {variant:18s} PatchDL {np.median(o):6.1f}  DataBlock {np.median(n):6.1f} img/s  ratio {ratio:.3f}", flush=True)
    load1 = os.getloadavg()[0]
    body = (f"## DataBlock path vs the PatchDL path it replaced (training img/s)\n\n"
            f"Each cell: median over {a.rounds} alternating rounds (old, new, old, ...) of {a.batches} timed training batches after {a.warm} "
            f"warm-up, bs 64, in-RAM pcam-sample patches (synthetic when absent), validation skipped; 'PatchDL' = commit {a.old}. "
            f"Ratio = median of the per-round DataBlock/PatchDL ratios (target >= 0.95). 'small' = the reference CNN at cpu-best's size. "
            f"Load average {load0:.1f} at start / {load1:.1f} at end.\n\n"
            "| model | crop | threads | variant | PatchDL img/s | DataBlock img/s | ratio | rounds (old / new) |\n|---|---|---|---|---|---|---|---|\n"
            + '\n'.join(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.3f} | {[round(v) for v in r[7]]} / {[round(v) for v in r[8]]} |" for r in rows))
    write_section('datablock_vs_patchdl', body)

if __name__=='__main__': main()
