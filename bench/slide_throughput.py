"""Whole-slide inference speed and memory (`histo_lib.slide.predict_slides`): tissue tiles per second without TTA and
with dihedral TTA, ONNX Runtime and PyTorch, and peak RSS, on a 40,000 x 40,000-pixel synthetic slide that is mostly
glass; the same tissue on a 10,000-pixel slide shows that the time follows the tissue, not the slide's size.

The slides are pyramidal JPEG TIFFs (levels /1 /2 /4, 256-px tiles, 0.972 µm/px) written once by
`histo_lib.synth.write_slide` into --cache (default $HISTO_CACHE/slide_bench or /tmp), with the same tissue islands
(about --tissue tiles of synthetic patches) at the same place. The model is the reference CNN (2.4M parameters) at crop
64 with random weights: speed does not depend on what it learnt. Each measurement runs in a fresh subprocess that
reports its peak RSS (`ru_maxrss`) and the phases of `slide.json` (tissue detection, prediction, writing outputs).

    python bench/slide_throughput.py [--size 40000] [--tissue 1000] [--quick] [--device cuda]

--device cuda measures the GPU (PyTorch backend only; ONNX Runtime runs on the CPU here); --quick runs only the
no-TTA rows.
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))

CELL = 96

def islands(n_rows:int, n_cols:int, tissue:int, seed:int=0)->np.ndarray:
    "A (rows, cols) tumour map: -1 glass everywhere but three elliptical islands of about `tissue` cells in all, near the origin."
    m = np.full((n_rows, n_cols), -1, np.int64)
    yy, xx = np.mgrid[:n_rows, :n_cols]
    rng = np.random.default_rng(seed)
    r = np.sqrt(tissue/3/np.pi)
    for cy, cx in ((r+3, r+3), (2.2*r+6, 3.2*r+8), (r+5, 5*r+12)):
        isl = (yy-cy)**2 + (xx-cx)**2 < r*r
        m[isl] = (rng.random(isl.sum())<0.3).astype(np.int64)
    return m

def make_slide(fn:Path, size:int, tissue:int)->Path:
    "The bench slide: `islands` of 400 distinct synthetic patches (reused), glass elsewhere, `size` px square."
    if fn.exists(): return fn
    from histo_lib.synth import write_slide
    from histo_lib.synth import synth_patches
    n = -(-size//CELL)
    m = islands(n, n, tissue)
    pos, _ = synth_patches(200, (1, 1), pos_frac=1.); neg, _ = synth_patches(200, (1, 0), pos_frac=0.)
    cells = np.where(m<0, -1, np.where(m==1, 0, 200) + np.arange(m.size).reshape(m.shape) % 200)
    t = time.time()
    write_slide(fn, cells, np.concatenate([pos, neg]), size=(size, size), mpp=0.972)
    print(f"wrote {fn} ({size}x{size}, {(m>=0).sum()} tissue cells, {fn.stat().st_size/2**20:.0f} MB) in {time.time()-t:.0f} s", flush=True)
    return fn

def child(a):
    "Predict one slide with one configuration; print a JSON line of speed and memory."
    import torch
    from histo_lib.runtime import set_threads
    from histo_lib.models import build_model, save_artefact
    from histo_lib.slide import predict_slides
    set_threads(a.threads)
    run = Path(a.cache)/'run'
    if not (run/'model.json').exists():
        torch.manual_seed(0)
        save_artefact(build_model('reference'), dict(arch='reference', crop=64, mean=[0.7, 0.55, 0.7], std=[0.15, 0.2, 0.15], model_kwargs={}), run)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
    t = time.perf_counter()
    r = predict_slides(run, [a.slide], Path(a.cache)/'out', tta=a.tta, backend=a.backend, bs=a.bs, device=a.device,
                       overwrite=True, progress=False)[0]
    wall = time.perf_counter()-t
    assert r['status']=='done', r
    print(json.dumps(dict(slide=Path(a.slide).name, size=r['size_l0'][0], n_grid=r['n_grid'], n_tissue=r['n_tissue'],
                          backend=a.backend, engine=r['backend'][0], tta=a.tta, wall=wall, **r['timings'],
                          tiles_per_s=r['n_tissue']/r['timings']['predict_s'], base_mb=base,
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)))

def measure(a, slide:Path, backend:str, tta:str)->dict:
    cmd = [sys.executable, __file__, '--child', '--slide', str(slide), '--backend', backend, '--tta', tta, '--bs', str(a.bs),
           '--threads', str(a.threads), '--cache', str(a.cache), '--device', a.device]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode: raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{r['slide']:22} {backend:5}/{r['engine']:9} tta {tta:8}: {r['n_tissue']} of {r['n_grid']} tiles, "
          f"{r['tiles_per_s']:6.1f} tiles/s; tissue {r['tissue_s']:.1f} s, predict {r['predict_s']:.1f} s, write {r['write_s']:.1f} s, "
          f"wall {r['wall']:.1f} s; peak {r['peak_mb']:.0f} MB (after imports {r['base_mb']:.0f}); load {os.getloadavg()[0]:.1f}", flush=True)
    return r

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--slide', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--size', type=int, default=40_000, help='side of the large slide in level-0 pixels')
    ap.add_argument('--small', type=int, default=10_000, help='side of the small slide with the same tissue')
    ap.add_argument('--tissue', type=int, default=1000, help='tissue cells (96 px) on each slide, about')
    ap.add_argument('--tta', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--backend', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (PyTorch backend only)")
    ap.add_argument('--cache', type=Path, default=Path(os.environ.get('HISTO_CACHE') or '/tmp')/'slide_bench')
    ap.add_argument('--quick', action='store_true', help='no-TTA rows only')
    ap.add_argument('--no-write', action='store_true', help='print only; leave bench/RESULTS.md alone')
    ap.add_argument('--section', default='slide_throughput', help='RESULTS.md section to write (bench/gpu.sh: slide_gpu)')
    a = ap.parse_args()
    if a.child: return child(a)
    a.cache.mkdir(parents=True, exist_ok=True)
    big = make_slide(a.cache/f'bench_{a.size}_{a.tissue}.tif', a.size, a.tissue)
    small = make_slide(a.cache/f'bench_{a.small}_{a.tissue}.tif', a.small, a.tissue)
    backends = ['torch'] if a.device!='cpu' else ['onnx', 'torch']
    ttas = ['none'] if a.quick else ['none', 'dihedral']
    load0 = os.getloadavg()
    rows = [measure(a, small, backends[0], 'none')]
    rows += [measure(a, big, b, t) for t in ttas for b in backends]
    rows.append(measure(a, small, backends[0], 'none'))  # again at the end: the pair brackets the big slide's rows
    if a.no_write: return
    from _results import write_section, cpu_name
    cpu = cpu_name()
    body = [f"## Whole-slide inference (`{a.section}`)\n",
            f"`predict_slides` on synthetic pyramidal JPEG TIFFs at 0.972 µm/px (levels /1 /2 /4, 256-px tiles): a {a.size:,} x "
            f"{a.size:,}-px slide and a {a.small:,} x {a.small:,}-px one carrying the same tissue islands, the rest glass ("
            f"{rows[0]['n_tissue']} tissue tiles found on the small slide, {rows[1]['n_tissue']} on the large one, whose coarser "
            f"tissue mask keeps a few more edge tiles). Reference CNN (2.4M parameters, crop 64, random weights), bs {a.bs}, {a.threads} threads, device {a.device}, "
            f"CPU **{cpu}**. Tiles/s counts tissue tiles over the prediction phase (reading included, prefetched in a thread); "
            f"*tissue* is the thumbnail read in strips plus Otsu and morphology; *write* is tiles.csv, heatmap.npy/png, mask.png, "
            f"regions.geojson and slide.json; peak is the process's `ru_maxrss` (model and libraries included; 'after imports' "
            f"before the slide is opened). Load average {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at the end: other jobs "
            f"shared the cores, so compare rows with each other.\n",
            "| slide (px) | grid tiles | tissue tiles | backend | TTA | tiles/s | tissue s | predict s | write s | total s | peak MB (after imports) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        body.append(f"| {r['size']:,} | {r['n_grid']:,} | {r['n_tissue']} | {r['backend']} ({r['engine']}) | {r['tta']} | {r['tiles_per_s']:.1f} | "
                    f"{r['tissue_s']:.1f} | {r['predict_s']:.1f} | {r['write_s']:.1f} | {r['total_s']:.1f} | {r['peak_mb']:.0f} ({r['base_mb']:.0f}) |")
    big_none = [r for r in rows if r['size']==a.size and r['tta']=='none' and r['backend']==backends[0]][0]
    small_t = np.mean([r['total_s'] for r in (rows[0], rows[-1])])
    body.append(f"\nThe {a.size//a.small}x wider slide ({(a.size/a.small)**2:.0f}x the pixels, {big_none['n_grid']/rows[0]['n_grid']:.0f}x the grid) "
                f"with the same tissue took {big_none['total_s']:.1f} s against {small_t:.1f} s (mean of the two small-slide runs): "
                f"the extra is the larger thumbnail and tissue mask, not the model.")
    write_section(a.section, '\n'.join(body))

if __name__ == '__main__': main()
