"`histo evaluate-slides` end to end on synthetic `histo slide` outputs with known lesions (large, medium, small, an ITC; normal slides), annotations as GeoJSON and as ASAP XML."
from __future__ import annotations
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest
from sklearn.metrics import roc_auc_score
from conftest import histo, one_line

pytest.importorskip('skimage')
from histo_lib.annotations import write_geojson, write_asap_xml, annotation_mask, read_annotations

TILE, MPP = 96, 0.972

def circle(cx, cy, r, cls='tumour'):
    a = np.linspace(0, 2*np.pi, 48, endpoint=False)
    return dict(cls=cls, exterior=np.c_[cx+r*np.cos(a), cy+r*np.sin(a)], holes=[], name=f'circle {r}')

def slide_out(out:Path, name:str, polys:list, spots=(), gain=0.9, mpp=MPP, rows=30, cols=40, seed=0)->Path:
    "`histo slide`'s files for one slide, written directly: tile probabilities rise with the tumour share of each tile (times `gain`), plus noise and bright `spots`."
    rng, d, tile = np.random.default_rng(seed), out/name, round(TILE*MPP/mpp)
    d.mkdir(parents=True)
    frac = annotation_mask(polys, (rows*8, cols*8), tile/8).reshape(rows, 8, cols, 8).mean((1, 3))
    heat = np.clip(0.03 + gain*frac + rng.normal(0, 0.04, frac.shape), 0, 1)
    for r, c, p in spots: heat[r, c] = p
    rr, cc = np.mgrid[:rows, :cols]
    pd.DataFrame(dict(x=cc.ravel()*tile, y=rr.ravel()*tile, w=tile, h=tile, prob=heat.ravel(), row=rr.ravel(), col=cc.ravel())).to_csv(d/'tiles.csv', index=False)
    np.save(d/'heatmap.npy', heat.astype(np.float32))
    sc = dict(max=float(heat.max()), p99=float(np.percentile(heat, 99)), p95=float(np.percentile(heat, 95)), mean=float(heat.mean()))
    (d/'slide.json').write_text(json.dumps(dict(name=name, size_l0=[cols*tile, rows*tile], slide_mpp=mpp, tile_l0=tile, stride_l0=tile, score=sc)))
    return d

# name: (annotations, false spots (row, col, p), lesion gain, MPP); coordinates in level-0 px of each slide
SLIDES = {'tumour-big': ([circle(1800, 1400, 700), circle(2500, 1400, 250, 'exclusion')], [(25, 35, 0.8)], 0.9, MPP),  # right edge excluded
          'tumour-mid': ([circle(1200, 1200, 300), circle(3000, 2000, 35)], [(3, 30, 0.75)], 0.75, MPP),   # a lesion and an ITC (70 µm + 75 µm margin)
          'tumour-fine': ([circle(2400, 2400, 400), circle(6000, 2400, 75/0.486)], [], 0.65, 0.486),         # 0.486 µm/px; an ITC 150 µm across
          'tumour-small': ([circle(2500, 900, 160)], [(5, 5, 0.97)], 0.6, MPP),                           # small and faint, a brighter false spot
          'normal-a': ([], [(10, 10, 0.9), (20, 30, 0.7)], 0, MPP), 'normal-b': ([], [(2, 2, 0.68)], 0, MPP)}

@pytest.fixture(scope='module')
def case(tmp_path_factory):
    "Slide outputs and the same annotations in both formats; normal-a has an empty GeoJSON / XML file, normal-b none."
    d = tmp_path_factory.mktemp('cam')
    for i, (n, (p, spots, gain, mpp)) in enumerate(SLIDES.items()):
        slide_out(d/'out', n, p, spots, gain, mpp, seed=i)
        if n != 'normal-b': write_geojson(p, d/'gj'/f'{n}.geojson'); write_asap_xml(p, d/'xml'/f'{n}.xml')
    return d

def official_froc(det:pd.DataFrame, truth:Path, out:Path)->float:
    "The Camelyon16 rules written again here, loop by loop as Evaluation_FROC.py runs them, from detections.csv and the annotations."
    from scipy import ndimage
    from skimage import measure
    px = 0.243*32
    fps, tps, n_tum = [], [], 0
    for name in sorted(p.name for p in out.iterdir()):
        rows, ds = det[det.slide==name], px/SLIDES[name][3]
        fns = list(truth.glob(f'{name}.*'))
        polys = read_annotations(fns[0]) if fns else []
        fp, tp = [], []
        if any(p['cls']=='tumour' for p in polys):
            W, H = json.loads((out/name/'slide.json').read_text())['size_l0']
            m = annotation_mask(polys, (int(np.ceil(H/ds)), int(np.ceil(W/ds))), ds)
            lab = measure.label(ndimage.binary_fill_holes(ndimage.distance_transform_edt(1-m) < 75/(px*2)), connectivity=2)
            props = measure.regionprops(lab)
            itc = [i+1 for i in range(lab.max()) if props[i].axis_major_length < 275/px]
            tp = [0.]*lab.max()
            for x, y, p in zip(rows.x, rows.y, rows.prob):
                k = lab[int(y/ds), int(x/ds)]
                if k==0: fp.append(p)
                elif k not in itc and p>tp[k-1]: tp[k-1] = p
            n_tum += lab.max() - len(itc)
        else: fp = list(rows.prob)
        fps += fp; tps += tp
    ths = sorted(set(fps + tps))[1:]
    fa, ta = np.array(fps), np.array(tps)
    f = [(fa>=t).sum() for t in ths] + [0]
    s = [(ta>=t).sum() for t in ths] + [0]
    n = len(list(out.iterdir()))
    return float(np.mean(np.interp([.25, .5, 1, 2, 4, 8], (np.array(f)/n)[::-1], (np.array(s)/n_tum)[::-1])))

def test_geojson_and_xml_same_report_and_rules(case, tmp_path):
    histo('evaluate-slides', case/'out', '--truth', case/'gj', '--out', tmp_path/'rg')
    r = histo('evaluate-slides', case/'out', '--truth', case/'xml', '--out', tmp_path/'rx')
    assert 'slide AUC' in r.stdout and 'FROC' in r.stdout and r.stderr == ''
    rg, rx = (json.loads((tmp_path/k/'report.json').read_text()) for k in ('rg', 'rx'))
    assert {k: v for k, v in rg.items() if k!='truth'} == {k: v for k, v in rx.items() if k!='truth'}
    assert (rg['n_slides'], rg['n_tumour_slides'], rg['lesions'], rg['itcs'], rg['hits']) == (6, 4, 4, 2, 4)
    assert [o['fp_per_slide'] for o in rg['froc_points']] == [.25, .5, 1, 2, 4, 8]
    s = pd.read_csv(tmp_path/'rg'/'slides.csv')
    assert list(s.columns) == ['slide', 'score', 'label'] and s.label.tolist() == [0, 0, 1, 1, 1, 1]
    assert rg['slide_auc'] == pytest.approx(roc_auc_score(s.label, s.score))
    det = pd.read_csv(tmp_path/'rg'/'detections.csv')
    assert list(det.columns) == ['slide', 'x', 'y', 'prob'] and (det.x % 48 == 0).all()   # tile centres, whole level-0 pixels
    assert rg['froc'] == pytest.approx(official_froc(det, case/'gj', case/'out'), abs=1e-9)
    assert 0.4 < rg['froc'] < 0.95, rg['froc_points']   # false spots above the faint lesions: the curve has to climb
    for n, g in det.groupby('slide'):   # candidates: further apart than the NMS radius (250 µm)
        xy = g[['x', 'y']].to_numpy(float); d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
        assert (d[np.triu_indices(len(xy), 1)] > 250/SLIDES[n][3]).all(), n
    for f in ('report.md', 'froc.png', 'slide_roc.png', 'annotations/tumour-mid.geojson', 'annotations/normal-b.geojson'):
        assert (tmp_path/'rg'/f).stat().st_size > 0, f
    assert len(read_annotations(tmp_path/'rg'/'annotations'/'tumour-mid.geojson')) == 2

def test_slide_score_statistic_flag(case, tmp_path):
    histo('evaluate-slides', case/'out', '--truth', case/'gj', '--out', tmp_path/'r', '--score', 'mean', '--radius', 500)
    rep = json.loads((tmp_path/'r'/'report.json').read_text())
    assert (rep['score_stat'], rep['radius_um']) == ('mean', 500)
    means = {n: json.loads((case/'out'/n/'slide.json').read_text())['score']['mean'] for n in SLIDES}
    assert {r['slide']: r['score'] for r in rep['slides']} == pytest.approx(means)

def test_broken_annotation_and_unfinished_slide(case, tmp_path):
    out, truth = tmp_path/'out', tmp_path/'truth'
    shutil.copytree(case/'out', out); shutil.copytree(case/'gj', truth)
    (truth/'tumour-small.geojson').write_text('{"type": "FeatureCollection", "features": [')   # broken
    (out/'tumour-big'/'slide.json').unlink()                                                   # unfinished
    (truth/'stray.xml').write_text('')
    r = histo('evaluate-slides', out, '--truth', truth, '--out', out/'rep', ok=False)   # the report inside SLIDE_OUT
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert any('tumour-big' in l and 'no slide.json' in l for l in err)
    assert any('tumour-small.geojson' in l and 'broken JSON' in l for l in err)
    assert any('stray.xml' in l for l in err)
    assert err[-1].startswith('histo evaluate-slides: error: 1 slide(s) left out for broken annotations')
    rep = json.loads((out/'rep'/'report.json').read_text())
    assert [s['slide'] for s in rep['slides']] == ['normal-a', 'normal-b', 'tumour-fine', 'tumour-mid'] and rep['failed'] == ['tumour-small']
    (truth/'tumour-small.geojson').write_text('{"type": "Polygon", "coordinates": [[[0, 0], [5, 5], [0, 0]]]}')   # < 3 points
    r = histo('evaluate-slides', out, '--truth', truth, '--out', out/'rep', ok=False)
    assert r.returncode == 2 and "tumour-small.geojson: polygon" in r.stderr and 'fewer than 3' in r.stderr
    assert f"{out/'rep'}: no slide.json" not in r.stderr   # the report folder is not taken for a slide

def test_bad_arguments_one_line(case, tmp_path):
    one_line(histo('evaluate-slides', case/'out', '--truth', tmp_path/'nope', '--out', tmp_path/'r', ok=False), 'nope', 'no such folder')
    (tmp_path/'empty').mkdir()
    one_line(histo('evaluate-slides', tmp_path/'empty', '--truth', case/'gj', '--out', tmp_path/'r', ok=False), 'no finished slide folder')
