"""Data-parallel training throughput: `histo train --nproc 1` against `--nproc N`, end to end through the command line.

Each configuration trains the same seeded synthetic PCam-HDF5 set twice, for `--short` and for `--long` epochs; the
difference of the two `train` times (rank 0's, as `model.json` records them: after imports and process start-up) is
the cost of the extra epochs alone (decoding, set-up and the artefact cancel out), and training images/s = extra epochs x training images / that difference. Validation is included
in an epoch, as in a real run.

    python bench/ddp_throughput.py                        # CPU: 1 process (every core) vs 2 gloo processes (cores/2 each)
    python bench/ddp_throughput.py --device gpu           # GPU: plain 1-GPU path vs 1 GPU through the DDP wrapper
                                                          #      (one process started by torchrun) vs every GPU
(`bash bench/gpu.sh check` runs the GPU variant with the figures a lent GPU machine needs.)
"""
from __future__ import annotations
import argparse, json, os, sys, time, shutil, subprocess, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section

def histo(*args, env=None, launcher=None):
    "Run `histo` (or `launcher -m histo_lib.cli`) and return its wall seconds."
    cmd = (launcher or [sys.executable, '-m', 'histo_lib.cli']) + [str(a) for a in args]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu', choices=['cpu', 'gpu'])
    ap.add_argument('--n', type=int, default=None, help='training images (default: 2000 on CPU, 40000 on GPU)')
    ap.add_argument('--crop', type=int, default=64); ap.add_argument('--bs', type=int, default=None)
    ap.add_argument('--short', type=int, default=1); ap.add_argument('--long', type=int, default=3)
    ap.add_argument('--nproc', type=int, default=2, help='CPU: the processes to compare with one (GPU: every GPU)')
    a = ap.parse_args()
    gpu = a.device=='gpu'
    n, bs = a.n or (40000 if gpu else 2000), a.bs or (32 if gpu else 32)
    d = Path(tempfile.mkdtemp(prefix='histo-ddp-bench-'))
    base = {k:v for k,v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'HISTO_THREADS')}
    base['HISTO_CACHE'] = str(d/'cache')
    cores = len(os.sched_getaffinity(0))
    histo('synth', d/'syn', '--format', 'h5', '--n-train', n, '--seed', 0, env=base)
    flags = ['--crop', a.crop, '--bs', bs, '--patience', 0, '--seed', 0]
    if gpu:
        import torch
        ngpu = torch.cuda.device_count()
        one = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '1', '-m', 'histo_lib.cli']  # sets LOCAL_RANK, WORLD_SIZE=1
        configs = [('1 GPU, plain single-process path', dict(env=base), []),
                   ('1 GPU through the DDP wrapper (torchrun, one process)', dict(env=base, launcher=one), []),
                   (f'{ngpu} GPU(s), --nproc 0 (one process per GPU)', dict(env=base), ['--nproc', 0])]
    else:
        configs = [(f'1 process, {cores} threads', dict(env={**base, 'OMP_NUM_THREADS': str(cores)}), ['--nproc', 1]),
                   ('1 process, 1 thread', dict(env={**base, 'OMP_NUM_THREADS': '1'}), ['--nproc', 1]),
                   (f'{a.nproc} gloo processes, {max(1, cores//a.nproc)} thread(s) each', dict(env=base), ['--nproc', a.nproc])]
    rows = []
    for name, kw, extra in configs:
        w = {}
        for e in (a.short, a.long):
            out = d/f'run{len(rows)}_{e}'
            histo('train', d/'syn', '--out', out, '--epochs', e, *flags, *extra, **kw)
            w[e] = json.loads((out/'model.json').read_text())['train']['seconds']  # rank 0's `train`: after imports and start-up
        ips = (a.long-a.short)*n/(w[a.long]-w[a.short])
        rows.append((name, w[a.short], w[a.long], ips))
        print(f"{name}: {a.short} epoch(s) {w[a.short]:.1f} s, {a.long} epochs {w[a.long]:.1f} s -> {ips:.0f} training images/s", flush=True)
    lines = [f"`histo train` on a synthetic PCam-HDF5 set of {n} training (+ {n} validation) patches, reference CNN, crop {a.crop}, bs {bs} "
             f"per process; images/s from the extra {a.long-a.short} epochs (t({a.long}) - t({a.short}), rank 0's `train` seconds in model.json), validation included.", '',
             f"| configuration | train s, {a.short} epoch(s) | train s, {a.long} epochs | training images/s | vs first row |", "|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]:.1f} s | {r[2]:.1f} s | {r[3]:.0f} | {r[3]/rows[0][3]:.2f}x |" for r in rows]
    if not gpu: lines += ['', "Two processes on two cores split the same arithmetic between them and add a gradient all-reduce (gloo, through "
                          "memory) every step; one process with two threads would keep both cores busy in the convolutions on an idle machine, "
                          "so there the gain is small at best. On a machine whose cores other jobs share (see the load average below), "
                          "torch's threads spin-wait for each other and one process with 2 threads can be far slower than with 1: "
                          "compare against the 1-thread row. Single runs on a shared machine are noisy. "
                          "The CPU path exists to test the distributed code without a GPU; the speed-up is for several GPUs."]
    write_section('ddp_gpu' if gpu else 'ddp_cpu', '## Data-parallel training (`--nproc`)' + (' on GPUs' if gpu else ' on the CPU') + '\n\n' + '\n'.join(lines))
    shutil.rmtree(d, ignore_errors=True)

if __name__ == '__main__': main()
