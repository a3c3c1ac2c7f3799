"""Issue 16's performance figures for a recipe's model (default: cpu-best): training images/s and the share of the
2-core matmul peak its FLOPs use, in float32 and in bfloat16 (channels-last), and inference images/s with 8-view
dihedral TTA through `Predictor` with PyTorch and with ONNX Runtime (and with one view).

The matmul peak is measured here: a 4096x4096 `torch.mm` on the same threads, float32 and bfloat16. Training images/s
are the library's own fastai path (`array_dls` + `histo_learner`, as `bench/train_throughput.py` runs it) on real
pcam-sample patches, validation skipped; FLOPs per image come from torch's FlopCounterMode (forward + backward).

    python bench/model_perf.py [--recipe cpu-best] [--threads 2] [--batches 12] [--rounds 2]
"""
from __future__ import annotations
import argparse, os, platform, subprocess, sys, time, warnings
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings('ignore')
from _results import write_section
from train_throughput import pixels, run_fastai
from recipe import train_gflop
from histo_lib.core import load_settings, packaged_settings, keep_freed_memory
from histo_lib.train import model_kwargs_of
from histo_lib.models import build_model
from histo_lib.infer import Predictor, onnx_available

def cpu_name()->str:
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    name = next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), platform.processor())
    flags = next((l for l in out.splitlines() if l.startswith('Flags')), '')
    return name + (' (AMX)' if 'amx_tile' in flags else ' (AVX512-BF16)' if 'avx512_bf16' in flags else '')

def matmul_peak(dtype, n:int=4096, reps:int=6)->float:
    "GFLOP/s of an n x n matmul on this machine's torch threads."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a@b; best = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); a@b; best = min(best, time.perf_counter()-t)
    return 2*n**3/best/1e9

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--recipe', default='cpu-best'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batches', type=int, default=12); ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--n-infer', type=int, default=256)
    ap.add_argument('--glibc-default', action='store_true', help='only the bf16 training row, with glibc malloc as it is (HISTO_KEEP_FREED=0)')
    a = ap.parse_args()
    if a.glibc_default: os.environ['HISTO_KEEP_FREED'] = '0'
    torch.set_num_threads(a.threads); keep_freed_memory()  # as `histo train` and `histo predict` run
    s = load_settings(packaged_settings, a.recipe)
    arch, crop, bs = s['arch'], int(s['crop']), int(s['bs'])
    mk = model_kwargs_of(s)
    load0 = os.getloadavg()[0]
    peak = {'float32': matmul_peak(torch.float32), 'bfloat16': matmul_peak(torch.bfloat16)}
    gflop = train_gflop(build_model(arch, **mk), crop)
    x, y, src = pixels(bs*(a.batches+1))
    train_rows = []
    for prec, cl, bf in (('float32', False, False), ('bfloat16', True, True))[1 if a.glibc_default else 0:]:
        r = [run_fastai(x, y, arch, crop, bs, a.batches, 2, cl, bf, seed=i, mk=mk) for i in range(a.rounds)]
        ips = float(np.median(r)); use = ips*gflop
        train_rows.append(f"| {prec}{' + channels-last' if cl else ''} | {ips:.0f} | {use:.0f} | {peak[prec]:.0f} | {use/peak[prec]:.0%} |")
        print(train_rows[-1], flush=True)
    if a.glibc_default: return
    cmd = [sys.executable, __file__, '--recipe', a.recipe, '--threads', str(a.threads), '--batches', str(a.batches), '--rounds', str(a.rounds), '--glibc-default']
    base = [l for l in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines() if l.startswith('| bfloat16')]
    train_rows += [l.replace('| bfloat16 + channels-last |', '| bfloat16 + channels-last, glibc malloc as it is (`HISTO_KEEP_FREED=0`) |') for l in base]
    torch.manual_seed(0)
    model = build_model(arch, **mk).eval()
    cfg = dict(arch=arch, crop=crop, mean=[0.7, 0.55, 0.7], std=[0.15, 0.2, 0.15], model_kwargs=mk)
    xi = np.ascontiguousarray(x[:a.n_infer])
    infer_rows = []
    for be in ['torch'] + (['onnx'] if onnx_available() else []):
        for tta in ('dihedral', 'none'):
            p = Predictor([(model, cfg)], tta=tta, bs=64, backend=be, prefetch=False)
            p(xi[:8], progress=False)
            rates = []
            for _ in range(a.rounds):
                t = time.perf_counter(); p(xi, progress=False); rates.append(len(xi)/(time.perf_counter()-t))
            infer_rows.append(f"| {be} | {tta} ({8 if tta=='dihedral' else 1} views) | {np.median(rates):.0f} |")
            print(infer_rows[-1], flush=True)
    body = (f"## Performance of the `{a.recipe}` model (`model_perf`)\n\n`python bench/model_perf.py --recipe {a.recipe}` on {cpu_name()}, "
            f"{a.threads} torch threads, freed memory kept (`keep_freed_memory`, as `histo` runs), load average {load0:.1f} at start / {os.getloadavg()[0]:.1f} at end. Model: {arch} {mk}, crop {crop}, "
            f"{gflop:.2f} GFLOP per training image (forward + backward). Matmul peak: the best of a 4096x4096 `torch.mm` on the same threads. "
            f"Training: the library's fastai path on {src} patches in RAM, bs {bs}, {a.batches} batches after 2 warm-up, median of "
            f"{a.rounds} rounds, validation skipped (a full epoch adds the validation pass and data overhead).\n\n"
            "| training precision | img/s | GFLOP/s used | matmul peak GFLOP/s | share of peak |\n|---|---|---|---|---|\n" + "\n".join(train_rows) +
            f"\n\nInference: `Predictor` on {len(xi)} patches in memory, bs 64, median of {a.rounds} rounds (ONNX Runtime on the CPU, "
            "float32)." + (" A p4m model gives the same output for all 8 views (to float rounding), so `--tta none` predicts what the "
            "default dihedral TTA does at an eighth of the cost." if arch=='p4m' else "") + "\n\n| backend | TTA | img/s |\n|---|---|---|\n" + "\n".join(infer_rows))
    print(body); write_section('model_perf', body)

if __name__=='__main__': main()
