"""Inference throughput of the reference CNN: images/s by TTA, stacked vs separate views, and backend (PyTorch eager,
ONNX Runtime), all interleaved in one run on the same images so that other load on the machine
hits every configuration alike.

Reports the median over rounds of wall-clock images/s and of images per CPU-second (less sensitive to other jobs), and
the dihedral ratio: dihedral images/s divided by (tta none images/s / 8); 1.0 means the 8 views cost exactly 8 plain
forward passes, the target is >= 0.90.

Each configuration's GFLOP/s is images/s x views x GFLOP per inference view (torch's FlopCounterMode).

    python bench/infer_throughput.py [--n 128] [--rounds 3] [--crops 64 96] [--threads 2]
    python bench/infer_throughput.py --recipe cpu-best --crops 96      # the recipe's model (cpu-best: the small CNN)
"""
from __future__ import annotations
import argparse, os, sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section, gflop
from histo_lib.settings import load_settings, packaged_settings
from histo_lib.train import model_kwargs_of
from histo_lib.models import build_model
from histo_lib.infer import Predictor, onnx_available
from histo_lib.transforms import tta_n_views
from histo_lib.synth import synth_patches

def load_avg()->str: return ' '.join(f'{x:.1f}' for x in os.getloadavg())

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--n', type=int, default=128, help='images per measurement')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--crops', type=int, nargs='+', default=[64, 96])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--max-forward', type=int, default=128)
    ap.add_argument('--recipe', default=None, help="the packaged recipe whose model to measure (default: the full reference CNN)")
    ap.add_argument('--section', default='infer_throughput', help='RESULTS.md section to write')
    a = ap.parse_args()
    s = load_settings(packaged_settings, a.recipe) if a.recipe else {}
    arch, mk, gf = s.get('arch', 'reference'), model_kwargs_of(s), {}
    torch.set_num_threads(a.threads)
    x, _ = synth_patches(a.n, seed=0)
    load0 = load_avg()
    backends = ['torch'] + (['onnx'] if onnx_available() else [])  # the library's backends
    rows = {}  # (crop, backend, tta, stack) -> list of (wall img/s, cpu img/s)
    preds = {}
    for crop in a.crops:
        torch.manual_seed(0)
        model = build_model(arch, **mk).eval(); gf[crop] = gflop(model, crop)
        cfg = dict(arch=arch, crop=crop, mean=[0.7, 0.55, 0.7], std=[0.15, 0.2, 0.15], model_kwargs=mk)
        for be in backends:
            preds[crop, be] = Predictor([(model, cfg)], tta='none', bs=a.bs, max_forward=a.max_forward,
                                        backend='onnx' if be=='onnx' else 'torch', prefetch=False)
            preds[crop, be](x[:8], progress=False)  # warm up (and export)
    confs = [(crop, be, tta, stack) for crop in a.crops for be in backends for tta in ('none', 'flip', 'dihedral')
             for stack in ((True, False) if tta!='none' else (True,))]
    print(f"{len(confs)} configurations x {a.rounds} rounds, {a.n} images each; load average at start {load0}")
    for r in range(a.rounds):
        order = confs[r % len(confs):] + confs[:r % len(confs)]  # rotate so no configuration always runs first
        for crop, be, tta, stack in order:
            p = preds[crop, be]; p.tta, p.stack_views = tta, stack
            t, c = time.perf_counter(), time.process_time()
            p(x, progress=False)
            rows.setdefault((crop, be, tta, stack), []).append((a.n/(time.perf_counter()-t), a.n/(time.process_time()-c)))
        print(f"round {r+1}/{a.rounds} done, load average {load_avg()}", flush=True)
    med = {k: np.median(np.array(v), 0) for k,v in rows.items()}
    lines = ["| crop | backend | tta | views | stacked | images/s (wall) | images per CPU-s | GFLOP/s |", "|---|---|---|---|---|---|---|---|"]
    for (crop, be, tta, stack), (w, c) in med.items():
        lines.append(f"| {crop} | {be} | {tta} | {tta_n_views[tta]} | {'yes' if stack else 'no'} | {w:.1f} | {c:.1f} | {w*tta_n_views[tta]*gf[crop]:.0f} |")
    ratio = ["| crop | backend | dihedral / (none/8), wall | same, CPU-time | stacked / separate (dihedral, wall) |", "|---|---|---|---|---|"]
    for crop in a.crops:
        for be in backends:
            n, d, s = med[crop, be, 'none', True], med[crop, be, 'dihedral', True], med[crop, be, 'dihedral', False]
            ratio.append(f"| {crop} | {be} | {d[0]/(n[0]/8):.2f} | {d[1]/(n[1]/8):.2f} | {d[0]/s[0]:.2f} |")
    speed = ["| crop | tta | onnx / torch (wall) |", "|---|---|---|"]
    for crop in a.crops:
        for tta in ('none', 'dihedral'):
            t = med[crop, 'torch', tta, True][0]
            o = f"{med[crop, 'onnx', tta, True][0]/t:.2f}" if 'onnx' in backends else 'n/a'
            speed.append(f"| {crop} | {tta} | {o} |")
    body = (f"## Inference throughput (`{a.section}`)\n\n{arch} {mk or ''} (random init, {sum(p.numel() for p in model.parameters())/1e6:.2f}M "
            f"parameters, {gf[a.crops[-1]]:.2f} GFLOP per view at crop {a.crops[-1]}), `Predictor` on {a.n} synthetic uint8 patches in memory (preprocessing included, "
            f"prefetch off), bs {a.bs}, max_forward {a.max_forward}, {a.threads} torch/ORT threads; median of {a.rounds} "
            f"interleaved rounds. Load average (1/5/15 min) {load0} at start, {load_avg()} at the end: other jobs shared the "
            f"{os.cpu_count()} cores, so compare rows with each other, not with another run.\n\n"
            + '\n'.join(lines) + "\n\nDihedral TTA against the bound set by the plain forward pass (target >= 0.90):\n\n"
            + '\n'.join(ratio) + "\n\nBackends relative to PyTorch eager (stacked views):\n\n" + '\n'.join(speed))
    print(body)
    write_section(a.section, body)

if __name__=='__main__': main()
