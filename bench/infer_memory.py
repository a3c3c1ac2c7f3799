"""Peak memory of `predict` streaming N image files (1k, 10k and the 57,458 of the Kaggle test set): it should be flat
in N and under 2 GB, whatever bs and TTA, because `max_forward` bounds every forward pass.

Each measurement runs in a fresh subprocess, which reports its peak RSS (`ru_maxrss`) after importing the libraries
and loading the model (the baseline) and at the end. The images are synthetic
TIFFs written once by `histo_lib.synth.make_synth` into --data (default $HISTO_CACHE/synth57k, outside the repo).

    python bench/infer_memory.py [--data /work/cache_infer/synth57k] [--quick]
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))

N_TEST = 57_458

def child(a):
    "Predict the first `a.n` test images with one configuration; print a JSON line of memory and speed."
    import torch
    torch.set_num_threads(a.threads)
    from histo_lib.patches import load_items
    from histo_lib.models import build_model
    from histo_lib.infer import Predictor
    srcs = load_items(a.data, 'test', layout='kaggle')['src'].tolist()[:a.n]
    torch.manual_seed(0)
    cfg = dict(arch='reference', crop=a.crop, mean=[0.7, 0.55, 0.7], std=[0.15, 0.2, 0.15], model_kwargs={})
    pred = Predictor([(build_model('reference', a.crop).eval(), cfg)], tta=a.tta, bs=a.bs, max_forward=a.max_forward, backend=a.backend)
    base = _peak_mb()
    t = time.perf_counter(); probs = pred(srcs, progress=False); dt = time.perf_counter()-t
    assert len(probs)==a.n
    print(json.dumps(dict(n=a.n, tta=a.tta, backend=a.backend, bs=a.bs, max_forward=a.max_forward, base_mb=base,
                          peak_mb=_peak_mb(), secs=dt, ips=a.n/dt)))

def _peak_mb()->float:
    "Peak resident memory of this process so far, in MB (Linux reports `ru_maxrss` in KB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

def run(a, n, tta, backend, bs=64, max_forward=128)->dict:
    cmd = [sys.executable, __file__, '--child', '--data', str(a.data), '--n', str(n), '--tta', tta, '--backend', backend,
           '--bs', str(bs), '--max-forward', str(max_forward), '--crop', str(a.crop), '--threads', str(a.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode: raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"N {n:>6} tta {tta:8} {backend:5} bs {bs:3} max_forward {max_forward:4}: peak {r['peak_mb']:6.0f} MB "
          f"(after load {r['base_mb']:4.0f} MB), {r['ips']:6.1f} images/s, {r['secs']:5.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    return r

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--data', type=Path, default=None)
    ap.add_argument('--n', type=int, default=1000)
    ap.add_argument('--tta', default='none')
    ap.add_argument('--backend', default='auto')
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--max-forward', type=int, default=128)
    ap.add_argument('--crop', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--quick', action='store_true', help='only 1k and 10k, no dihedral points')
    a = ap.parse_args()
    if a.data is None:
        from histo_lib.cache import cache_dir
        a.data = cache_dir()/'synth57k'
    if a.child: return child(a)
    from _results import write_section
    from histo_lib.synth import make_synth
    from histo_lib.infer import onnx_available
    t = time.perf_counter(); make_synth(a.data, n_train=16, n_test=N_TEST, seed=7)
    print(f"dataset {a.data} ready ({time.perf_counter()-t:.0f} s)")
    be = 'onnx' if onnx_available() else 'torch'
    plan = [(1000, 'none', be), (10_000, 'none', be)] + ([] if a.quick else [(N_TEST, 'none', be)])
    plan += [(1000, 'none', 'torch'), (10_000, 'none', 'torch')]
    if not a.quick: plan += [(10_000, 'dihedral', be)]
    res = [run(a, *p) for p in plan]
    # the cap at work: dihedral TTA at bs 256, bounded (max_forward 128) and unbounded (one forward of 2048 images)
    cap = [run(a, 1000, 'dihedral', 'torch', 256, mf) for mf in (128, 2048)] + [run(a, 1000, 'dihedral', be, 256, 128)]
    rows = ["| N | tta | backend | bs | max_forward | peak RSS MB | RSS after loading MB | images/s | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['n']:,} | {r['tta']} | {r['backend']} | {r['bs']} | {r['max_forward']} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | {r['ips']:.1f} | {r['secs']:.0f} |"
             for r in res+cap]
    main_rows = [r for r in res if r['backend']==be and r['tta']=='none']
    spread = max(r['peak_mb'] for r in main_rows) - min(r['peak_mb'] for r in main_rows)
    body = (f"## Inference memory (`infer_memory`)\n\nPeak RSS of a fresh process predicting N synthetic 96x96 TIFF files "
            f"(streamed from disk, bs 64 unless noted), reference CNN at crop {a.crop}, {a.threads} threads. 'RSS after "
            f"loading' is the peak after importing torch/fastai and loading the model, before predicting (most of it is "
            f"the libraries). The 57,458-image point is without TTA to keep the run short (dihedral would take ~8x longer); "
            f"one dihedral point at 10k is given instead.\n\n" + '\n'.join(rows) +
            f"\n\nPeak memory varies by {spread:.0f} MB from 1k to {main_rows[-1]['n']:,} images ({be}, no TTA): flat in N. "
            f"The last three rows show the cap: dihedral TTA at bs 256 makes forward passes of 2048 images when "
            f"unbounded, and of 128 with the default `max_forward`.")
    print(body)
    write_section('infer_memory', body)

if __name__=='__main__': main()
