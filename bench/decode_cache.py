"""Decoding N patches from their image files against reading the decoded .npy memmap cache of `data.decode_items`
(issue 2): files (JPEG from pcam-sample, TIFF from the synthetic set), the cold cache build (decode + write), and the
warm read (open the memmap and copy every pixel out, as a training epoch does).

The rounds are interleaved; the OS page cache is not dropped (that needs root and disturbs other jobs), so after the
first round the image files and the .npy are both read from memory: the figures compare decoding with reading
already-decoded bytes, not disk speeds.

    python bench/decode_cache.py [--n 20000] [--rounds 2]
"""
from __future__ import annotations
import argparse, os, shutil, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section, PCAM
from histo_lib.patches import load_items
from histo_lib.cache import read_patches, decode_items, cache_dir

def sources(n:int)->dict:
    "name -> items table of up to `n` patches: pcam-sample JPEGs (if present) and synthetic TIFFs."
    res = {}
    if (PCAM/'train').is_dir(): res['pcam-sample train (JPEG)'] = load_items(PCAM, 'train', layout='folder')
    from histo_lib.synth import make_synth
    d = cache_dir()/'synth57k'
    if not (d/'synth.json').exists(): d = make_synth(cache_dir()/'synth_decode', n_train=16, n_test=n, seed=7)
    res['synthetic (TIFF)'] = load_items(d, 'test', layout='kaggle')
    return {k: v.sample(min(n, len(v)), random_state=0).sort_index().reset_index(drop=True) for k,v in res.items()}

def read_files(df, bs=2048):
    for s in range(0, len(df), bs): read_patches(df['src'].iloc[s:s+bs])

def cold(df, cdir):
    shutil.rmtree(cdir, ignore_errors=True)
    decode_items(df, cache=cdir, progress=False)

def warm(df, cdir, bs=2048):
    arr, _ = decode_items(df, cache=cdir, progress=False)
    tot = 0
    for s in range(0, len(arr), bs): tot += int(np.array(arr[s:s+bs])[:, 48, 48].sum())  # np.array copies every byte out
    return tot

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--n', type=int, default=20_000)
    ap.add_argument('--rounds', type=int, default=2)
    a = ap.parse_args()
    load0 = ' '.join(f'{x:.1f}' for x in os.getloadavg())
    srcs, res = sources(a.n), {}
    cdir = cache_dir()/'decode_bench'
    for r in range(a.rounds):
        for name, df in srcs.items():
            for what, f in (('decode files (read_patches)', lambda: read_files(df)), ('cold cache build (decode + write .npy)', lambda: cold(df, cdir)),
                            ('warm cache read (memmap, copy out)', lambda: warm(df, cdir))):
                t = time.perf_counter(); f(); dt = time.perf_counter()-t
                res.setdefault((name, what), []).append(dt)
                print(f"round {r+1} {name:26} {what:40} {len(df):6} in {dt:6.2f} s = {len(df)/dt:8.0f} images/s", flush=True)
    shutil.rmtree(cdir, ignore_errors=True)
    rows = ["| source | N | step | seconds (best of rounds) | images/s |", "|---|---|---|---|---|"]
    for (name, what), ts in res.items():
        n = len(srcs[name]); rows.append(f"| {name} | {n:,} | {what} | {min(ts):.2f} | {n/min(ts):,.0f} |")
    spd = [f"{name}: warm cache read is {min(res[name, 'decode files (read_patches)'])/min(res[name, 'warm cache read (memmap, copy out)']):.0f}x faster than decoding the files"
           for name in srcs]
    body = (f"## Decoding vs the .npy cache (`decode_cache`)\n\n{a.rounds} interleaved rounds, single process; page cache "
            f"not dropped (files and .npy are read from memory after round 1). Load average at start {load0}.\n\n"
            + '\n'.join(rows) + "\n\n" + '; '.join(spd) + '.')
    print(body)
    write_section('decode_cache', body)

if __name__=='__main__': main()
