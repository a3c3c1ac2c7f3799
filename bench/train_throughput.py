"""Training images/s: a fastai `Learner` built by histo_lib vs a plain PyTorch loop on the same model, pixels and batches.

Both paths start from the same in-memory uint8 NHWC array and do the same work per batch: gather + centre crop,
uint8 -> float/255, one random dihedral view per image, per-channel normalisation, forward, BCE-with-logits, backward,
Adam step. No colour jitter in either (fastai: `lighting=0`). The fastai side is the library's own path: `array_dls`
(the `histo_dblock` DataBlock, read by `HistoDL`) + `histo_learner` + `fit_one_cycle` with progress bar and logging off and validation skipped; the plain side is a `for` loop with
`torch.optim.Adam`. Rounds are interleaved (fastai, plain, fastai, plain, ...) so machine load hits both alike.

Every row also gives the FLOPs the fastai path puts to use: training GFLOP per image (forward + backward, torch's
FlopCounterMode) x img/s, against this machine's matmul peak (the best 4096x4096 `torch.mm` on the same threads, in the
row's precision). The library's `keep_freed_memory` is on, as `histo train` runs; `HISTO_KEEP_FREED=0` measures glibc's
default instead (the +39% of `keep_freed_memory` was measured that way).

    python bench/train_throughput.py                      # default grid
    python bench/train_throughput.py --recipe cpu-best --archs reference --crops 96 --variants default,channels_last+bf16
    python bench/train_throughput.py --threads 1 --archs reference --crops 64
    python bench/train_throughput.py --data-path          # the batch path alone (no model) from RAM, memmap and JPEGs
    python bench/train_throughput.py --recipe cpu-best --archs reference --crops 96 --threads 1 --clock cpu \
        --variants channels_last,channels_last+compile,channels_last+bf16,channels_last+bf16+compile   # torch.compile, on a shared machine

`compile` compiles the model in place (`nn.Module.compile()`, Inductor's CPU backend; its first batches, the compile,
fall in the warm-up). `--clock cpu` counts the process's CPU seconds instead of wall seconds: on a machine shared with
other work, one thread's CPU time is what the step costs, whatever else runs (with several threads, spin-waiting
inflates it).
"""
from __future__ import annotations
import argparse, itertools, os, sys, time, tempfile, warnings
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings('ignore')
from _results import write_section, gflop, md_table, PCAM
from fastai.callback.core import Callback, CancelValidException
from histo_lib.settings import load_settings, packaged_settings
from histo_lib.runtime import set_seed, keep_freed_memory
from histo_lib.data import array_dls
from fastai.torch_core import TensorImage
from histo_lib.transforms import center_crop, dihedral, HueJitter
from histo_lib.stain import hed_jitter
from histo_lib.patches import load_items
from histo_lib.cache import decode_items
from histo_lib.models import build_model
from histo_lib.train import histo_learner, model_kwargs_of
from histo_lib.callbacks import cpu_bf16_fast

clock = time.perf_counter  # `--clock cpu`: time.process_time
STAIN = 0.1  # the `stain` variants' H&E stain jitter: cpu-best's
HUE = 0.04   # the `hue` variants' largest hue turn: `ref_e20_stain10_hue04`'s

class _Timer(Callback):
    "Time training batches after `warm` warm-up batches; skip validation."
    order = 100
    def __init__(self, warm:int): self.warm, self.t = warm, []
    def after_batch(self):
        if self.training: self.t.append(clock())
    def before_validate(self): raise CancelValidException()

def pixels(n:int, seed:int=0):
    "n training patches of pcam-sample (decoded cache) as an in-RAM uint8 array, or synthetic ones when absent."
    root = PCAM
    if root.exists():
        items = load_items(root, 'train')
        idx = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
        x, items = decode_items(items, progress=False)
        return np.ascontiguousarray(x[idx]), items['label'].values[idx].astype(np.float32), 'pcam-sample train'
    from histo_lib.synth import synth_patches
    x, y = synth_patches(n, seed=seed)
    return x, y.astype(np.float32), 'synthetic'

def run_fastai(x, y, arch, crop, bs, nb, warm, channels_last, bf16=False, seed=0, mk=None, compile=False, stain=0., hue=0.):
    set_seed(seed)
    v = np.r_[np.flatnonzero(y==0)[:bs//2], np.flatnonzero(y==1)[:bs-bs//2]]  # `bs` validation items of both classes (the data door checks; validation is skipped)
    xv = np.concatenate([x, x[v]])
    dls = array_dls(xv, np.concatenate([y, y[v]]), np.arange(len(x), len(xv)), crop=crop, bs=bs, lighting=0., hue=hue, stain_aug=stain, seed=seed)
    set_seed(seed)
    learn = histo_learner(dls, arch, model_kwargs=mk, channels_last=channels_last, bf16=bf16, path=tempfile.mkdtemp())
    if compile: learn.model.compile()
    tm = _Timer(warm)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3, cbs=tm)
    t = tm.t[warm-1:]
    return bs*(len(t)-1)/(t[-1]-t[0])

def run_plain(x, y, arch, crop, bs, nb, warm, channels_last, bf16=False, seed=0, mk=None, compile=False, stain=0., hue=0.):
    set_seed(seed)
    xs = x[:, (96-crop)//2:(96-crop)//2+crop, (96-crop)//2:(96-crop)//2+crop]
    mean = torch.tensor(xs[:2000].reshape(-1,3).mean(0)/255).view(1,3,1,1).float()
    std = torch.tensor(xs[:2000].reshape(-1,3).std(0)/255).view(1,3,1,1).float()
    model = build_model(arch, **(mk or {}))
    if channels_last: model = model.to(memory_format=torch.channels_last)
    if compile: model.compile()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    lossf = torch.nn.BCEWithLogitsLoss()
    model.train(); t = []
    perm = torch.randperm(len(x)).numpy()
    for b in range(nb):
        idx = np.sort(perm[b*bs:(b+1)*bs])
        xb = torch.from_numpy(np.ascontiguousarray(center_crop(x[idx], crop))).permute(0,3,1,2).float().div_(255)
        ks = torch.randint(0, 8, (bs,)); res = xb.clone()
        for k in range(1, 8):
            m = ks==k
            if m.any(): res[m] = dihedral(xb[m], k)
        if hue: res = HueJitter(hue)(TensorImage(res), split_idx=0).as_subclass(torch.Tensor)
        if stain: res = hed_jitter(res, stain)
        xb = (res-mean)/std
        yb = torch.from_numpy(y[idx])
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16): loss = lossf(model(xb).float().view(-1), yb)
        opt.zero_grad(); loss.backward(); opt.step()
        t.append(clock())
    t = t[warm-1:]
    return bs*(len(t)-1)/(t[-1]-t[0])

def data_path(n_batches:int=30, bs:int=64, crop:int=64):
    "Images/s of the training batch path alone (gather, crop, float, dihedral, jitter, normalise) from three sources."
    from histo_lib.cache import read_patches
    from histo_lib.transforms import channel_stats
    root = PCAM
    items = load_items(root, 'train'); mm, items = decode_items(items, progress=False)
    n, lab = n_batches*bs*2, items['label'].values
    start = int(np.clip(np.flatnonzero(lab==1)[0] - n//2, 0, len(lab)-n))  # a window across the class boundary, so that
    win, valid = slice(start, start+n), np.arange(n//2 - bs//2, n//2 + bs - bs//2)  # its validation rows hold both classes
    ram = np.asarray(mm[win])
    y = lab[win].astype(np.float32)
    srcs = items['src'].values[win]
    class _Jpeg:  # decodes each requested row from its JPEG: no cache at all
        shape = ram.shape
        def __len__(self): return len(srcs)
        def __getitem__(self, i): return read_patches(srcs[i])
    res, stats = {}, channel_stats(ram)
    for name, x in (('in-RAM uint8 array', ram), ('decoded uint8 cache (memmap)', mm[win]), ('JPEG decode per batch (no cache)', _Jpeg())):
        dls = array_dls(x, y, valid, crop=crop, bs=bs, seed=0, stats=stats)
        t = time.perf_counter(); k = 0
        for b in dls.train:
            k += 1
            if k==n_batches: break
        res[name] = bs*n_batches/(time.perf_counter()-t)
        print(f"{name:34s} {res[name]:8.0f} img/s", flush=True)
    return res

def matmul_peak(dtype, n:int=4096, reps:int=6)->float:
    "GFLOP/s of an n x n matmul on this machine's torch threads."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a@b; best = float('inf')
    for _ in range(reps):
        t = clock(); a@b; best = min(best, clock()-t)
    return 2*n**3/best/1e9

def _speedup(rows, r)->str:
    "fastai img/s over the `default` variant's at the same arch, crop, threads and bs; without one, over the same variant's at the first bs."
    same = [o for o in rows if o[:2]==r[:2] and o[6]==r[6]]
    base = next((o[3] for o in same if o[2]=='default' and o[9]==r[9]), None) or next((o[3] for o in same if o[2]==r[2]), None)
    return f"{r[3]/base:.2f}x" if base else '-'

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--archs', default='reference,resnet18'); ap.add_argument('--crops', default='96,64')
    ap.add_argument('--bs', default='64', help='batch size; a list (64,128) measures each'); ap.add_argument('--batches', type=int, default=10)
    ap.add_argument('--warm', type=int, default=2); ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--threads', default='2', help='torch threads; a list (2,1) measures each, interleaved')
    ap.add_argument('--variants', default='default,channels_last+bf16',
                    help=f"comma-separated; each 'default' or a '+'-joined set of channels_last, bf16, compile, stain (H&E stain jitter {STAIN} on both paths), hue (hue jitter {HUE})")
    ap.add_argument('--clock', default='wall', choices=('wall', 'cpu'), help="wall seconds, or the process's CPU seconds (a shared machine, one thread)")
    ap.add_argument('--section', default='train_throughput', help='RESULTS.md section to write')
    ap.add_argument('--recipe', default=None, help="build the models with this packaged recipe's model_* keys (e.g. cpu-best's small CNN)")
    ap.add_argument('--data-path', action='store_true', help='only time the batch path (no model) from RAM, memmap cache and JPEGs')
    a = ap.parse_args()
    global clock
    clock = time.process_time if a.clock=='cpu' else time.perf_counter
    threads = [int(t) for t in str(a.threads).split(',')]
    torch.set_num_threads(threads[0]); keep_freed_memory()  # as `histo train` runs (HISTO_KEEP_FREED=0: glibc's default)
    if a.data_path:
        load0 = os.getloadavg()[0]; res = data_path(crop=int(a.crops.split(',')[-1]))
        write_section('train_data_path', f"## Training batch path alone (no model), crop {a.crops.split(',')[-1]}, bs 64, torch threads {a.threads}, load {load0:.1f}\n\n"
                      + md_table(['source', 'img/s'], [(k, f'{v:.0f}') for k,v in res.items()]))
        return
    mk = model_kwargs_of(load_settings(packaged_settings, a.recipe)) if a.recipe else {}
    load0 = os.getloadavg()[0]
    bf_on = cpu_bf16_fast()  # as `histo train`: `bf16` on a CPU without AVX512-BF16 or AMX runs float32 on both paths
    peak = {bf: matmul_peak(torch.bfloat16 if bf else torch.float32) for bf in {'bf16' in v.split('+') and bf_on for v in a.variants.split(',')}}
    bss = [int(b) for b in str(a.bs).split(',')]
    x, y, src = pixels(max(bss)*a.batches)
    rows = []
    for arch in a.archs.split(','):
        kw = mk if arch=='reference' else {}
        for crop in map(int, a.crops.split(',')):
            gf = gflop(build_model(arch, **kw), crop, train=True)
            for var, th, bs in itertools.product(a.variants.split(','), threads, bss):
                flags = set(var.split('+')); cl, bf, co, st, hu = 'channels_last' in flags, 'bf16' in flags and bf_on, 'compile' in flags, STAIN*('stain' in flags), HUE*('hue' in flags)
                fa, pl = [], []
                torch.set_num_threads(th)
                for r in range(a.rounds):
                    fa.append(run_fastai(x, y, arch, crop, bs, a.batches, a.warm, cl, bf, seed=r, mk=kw, compile=co, stain=st, hue=hu))
                    pl.append(run_plain(x, y, arch, crop, bs, a.batches, a.warm, cl, bf, seed=r, mk=kw, compile=co, stain=st, hue=hu))
                f, p = np.median(fa), np.median(pl)
                rows.append((arch, crop, var, f, p, p/f-1, th, f*gf, f*gf/peak[bf], bs))
                print(f"{arch:10s} crop {crop:3d} {var:22s} threads {th} bs {bs} fastai {f:7.1f} img/s  plain {p:7.1f} img/s  fastai overhead {100*(p/f-1):+5.1f}%  "
                      f"{f*gf:.0f} GFLOP/s = {f*gf/peak[bf]:.0%} of peak (rounds fastai {[round(v) for v in fa]}, plain {[round(v) for v in pl]})", flush=True)
    load1 = os.getloadavg()[0]
    body = (f"## Training throughput and FLOP use (`{a.section}`)\n\n"
            f"{src} patches, in-RAM uint8 array, bs {a.bs}, {a.batches} batches per measurement ({a.warm} warm-up), "
            f"median of {a.rounds} interleaved rounds, torch threads {a.threads}, {a.clock} clock, load average {load0:.1f} at start / {load1:.1f} at end. "
            f"Both paths: crop, uint8->float, random dihedral view per image, (`stain` variants: H&E stain jitter {STAIN}; `hue` variants: hue jitter {HUE},) normalise; no colour jitter. "
            f"Overhead = plain/fastai - 1 (positive: fastai slower). Speed-up: over the `default` variant at the same arch, crop, threads and bs, else over the same variant at the first bs. "
            f"GFLOP/s: fastai img/s x training GFLOP per image; peak: 4096x4096 `torch.mm`, "
            + ', '.join(f"{v:.0f} GFLOP/s {'bfloat16' if k else 'float32'}" for k,v in peak.items()) + ". " + (f"Reference CNN as recipe `{a.recipe}` builds it ({mk}). " if a.recipe else "") +
            f"keep_freed_memory {'off (HISTO_KEEP_FREED=0)' if os.environ.get('HISTO_KEEP_FREED')=='0' else 'on'}."
            + ("" if bf_on else " This CPU has neither AVX512-BF16 nor AMX, so `bf16` variants run float32 on both paths, as `histo train` falls back.") + "\n\n" +
            md_table(['arch', 'crop', 'fastai variant', 'threads', 'bs', 'fastai img/s', 'plain img/s', 'fastai overhead', 'speed-up', 'GFLOP/s', 'share of peak'],
                     [(r[0], r[1], r[2], r[6], r[9], f'{r[3]:.1f}', f'{r[4]:.1f}', f'{100*r[5]:+.1f}%', _speedup(rows, r), f'{r[7]:.0f}', f'{r[8]:.0%}') for r in rows]))
    write_section(a.section, body)

if __name__=='__main__': main()
