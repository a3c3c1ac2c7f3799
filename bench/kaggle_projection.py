"""Project the full Kaggle run (220,025 train x epochs + 57,458 test x 8 TTA views) from measured throughput.

Measures, on this machine: the reference CNN's training and inference throughput at the default crop (CPU, so a
floor), and its FLOPs per image (torch's FlopCounterMode). GPU time is projected from the FLOPs at a stated fraction
of each card's fp32 peak; run it on a GPU (the device tool, when lent) to replace the projection by a measurement.

    python bench/kaggle_projection.py [--epochs 4] [--crop 64] [--n 512]
"""
from __future__ import annotations
import argparse, time
import torch
from torch.utils.flop_counter import FlopCounterMode
from histo_lib.models import build_model
from histo_lib.infer import predict_batch
from _results import write_section

N_TRAIN, N_TEST, VIEWS = 220_025, 57_458, 8
CARDS = {'T4 (Kaggle)': 8.1e12, 'P100 (Kaggle)': 9.3e12, 'H100': 67e12}  # fp32 peak FLOP/s (no tensor cores)

def flops(model, crop, train):
    x = torch.randn(8, 3, crop, crop)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        if train: out.float().mean().backward()
    return fc.get_total_flops()/8

def rate(f, n, bs):
    f(); t = time.perf_counter(); done = 0
    while done < n: f(); done += bs
    return done/(time.perf_counter()-t)

def main(epochs=4, crop=64, n=512, frac=0.25):
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = build_model('reference', crop).to(dev); opt = torch.optim.Adam(model.parameters())
    f_train, f_inf = flops(model, crop, True), flops(model.eval(), crop, False)
    xb, yb = torch.randn(32, 3, crop, crop, device=dev), torch.rand(32, device=dev)
    def step():
        model.train(); loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb).view(-1), yb)
        opt.zero_grad(); loss.backward(); opt.step()
    xi = torch.randn(64, 3, crop, crop, device=dev)
    train_rate = rate(step, n, 32)
    model.eval(); inf_rate = rate(lambda: predict_batch(model, xi, 'dihedral'), n//4, 64)
    meas = (N_TRAIN*epochs/train_rate + N_TEST/inf_rate)/3600
    rows = [f"| measured here ({dev}) | {train_rate:,.0f} | {inf_rate*VIEWS:,.0f} | {meas:.2f} h |"]
    for card, peak in CARDS.items():
        tr, vi = frac*peak/f_train, frac*peak/f_inf
        rows.append(f"| {card}, projected at {frac:.0%} of fp32 peak | {tr:,.0f} | {vi:,.0f} | {(N_TRAIN*epochs/tr + N_TEST*VIEWS/vi)/3600*60:.1f} min |")
    body = (f"## Kaggle-scale projection\n\nReference CNN at crop {crop}: {f_train/1e9:.2f} GFLOP per training image, "
            f"{f_inf/1e9:.2f} GFLOP per inference view. Full run = {N_TRAIN:,} train images x {epochs} epochs + "
            f"{N_TEST:,} test images x {VIEWS} dihedral views (decoding the .tif files once adds a few minutes).\n\n"
            "| where | train images/s | inference views/s | full run |\n|---|---|---|---|\n" + "\n".join(rows) +
            "\n\nThe GPU rows are projections from FLOPs, not measurements: this task had no GPU lent. "
            "Kaggle's 9-hour GPU limit leaves a wide margin either way.")
    print(body); write_section('kaggle_projection', body)

if __name__=='__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--epochs', type=int, default=4); ap.add_argument('--crop', type=int, default=64); ap.add_argument('--n', type=int, default=512)
    a = ap.parse_args(); main(a.epochs, a.crop, a.n)
