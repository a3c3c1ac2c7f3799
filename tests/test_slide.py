"Whole-slide inference end to end: synthetic pyramidal TIFFs with a known tumour map, both readers, bad slides, reruns, `histo slide`."
from __future__ import annotations
import json, os, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from sklearn.metrics import roc_auc_score
import histo_lib.wsi as wsi
from histo_lib.core import HistoError
from histo_lib.synth import synth_slide, write_slide
from histo_lib.wsi import Slide, SlideWarning, read_plan, tile_grid, read_tiles
from histo_lib.slide import predict_slides, split_runs, find_slides
from histo_lib.regions import smooth_heat
from scipy import ndimage
from conftest import histo_cmd, histo, one_line

torch.set_num_threads(1)
pytest.importorskip('openslide'); pytest.importorskip('tiffslide')
Q = dict(tta='none', progress=False)

def tumour_map(rows=12, cols=16):
    "A tumour ellipse, scattered tumour cells, glass round the edge, in a channel and in a hole."
    yy, xx = np.mgrid[:rows, :cols]
    m = ((yy-5)**2/3**2 + (xx-5)**2/3.5**2 < 1).astype(int)
    m[[rows-3, 2, rows-4], [cols-4, cols-3, 3]] = 1
    m[:, 9] = -1; m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = -1
    m[7:9, 11:13] = -1
    return m

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "The smallest reference CNN that still tells the synthetic tumour from the rest (tile AUC about 0.95), trained once for the module."
    from histo_lib.synth import make_synth
    from histo_lib.train import train
    d = tmp_path_factory.mktemp('train')
    train(make_synth(d/'data', n_train=400, n_test=10, seed=1), d/'run', epochs=2, crop=64, bs=32,
          model_kwargs=dict(widths=(16, 32), dense=32), patience=0)
    return d/'run'

@pytest.fixture(scope='module')
def slide(tmp_path_factory):
    m = tumour_map()
    return synth_slide(tmp_path_factory.mktemp('slides')/'case-01.tif', m, seed=5), m

@pytest.fixture(scope='module')
def small(tmp_path_factory):
    "A 4x5-cell slide, for the tests where only the plumbing matters."
    m = np.zeros((4, 5), int); m[1:3, 1:3] = 1
    return synth_slide(tmp_path_factory.mktemp('small')/'small-01.tif', m, seed=2)

def check_outputs(out:Path, m:np.ndarray, cell:int=96):
    "Tiles sit one-to-one on the mosaic's tissue cells, glass is skipped, and the probabilities follow the tumour map."
    tiles = pd.read_csv(out/'tiles.csv')
    assert list(tiles.columns[:5]) == ['x', 'y', 'w', 'h', 'prob']
    assert (tiles.x % cell == 0).all() and (tiles.y % cell == 0).all() and (tiles.w == cell).all() and (tiles.h == cell).all()
    got = list(zip((tiles.y//cell).tolist(), (tiles.x//cell).tolist()))
    tissue = set(zip(*map(np.ndarray.tolist, np.nonzero(m >= 0))))
    assert len(set(got)) == len(got) and set(got) <= tissue       # one tile per cell, never a glass cell ...
    assert len(got) >= 0.98*len(tissue), (len(got), len(tissue))   # ... and (nearly) every tissue cell: the detector may
    heat = np.load(out/'heatmap.npy')                              #     call an exceptionally pale synthetic patch glass
    assert heat.shape == m.shape and (np.isnan(heat) == ~np.isin(np.arange(m.size), [r*m.shape[1]+c for r,c in got]).reshape(m.shape)).all()
    np.testing.assert_allclose(heat[tiles.y//cell, tiles.x//cell], tiles.prob, rtol=1e-5)
    seen = ~np.isnan(heat)
    auc = roc_auc_score(m[seen] == 1, heat[seen])
    assert auc >= 0.9, auc
    info = json.loads((out/'slide.json').read_text())
    assert (info['n_tissue'], info['n_glass'], info['n_grid']) == (len(got), m.size-len(got), m.size)
    probs = tiles.prob.values
    assert info['score']['max'] == pytest.approx(probs.max()) and info['score']['p99'] == pytest.approx(np.percentile(probs, 99))
    assert info['n_tumour'] == (probs >= 0.5).sum()
    return tiles, heat, info

def test_synthetic_slide_openslide(run, slide, tmp_path):
    fn, m = slide
    res = predict_slides(run, [fn], tmp_path, **Q)
    assert [r['status'] for r in res] == ['done'] and res[0]['reader'] == 'openslide'
    out = tmp_path/'case-01'
    assert sorted(p.name for p in out.iterdir()) == ['detections.geojson', 'heatmap.npy', 'heatmap.png', 'mask.png', 'regions.geojson', 'slide.json', 'tiles.csv']
    tiles, heat, info = check_outputs(out, m)
    assert (info['level'], info['slide_mpp'], info['mpp_source'], info['read_mpp']) == (0, pytest.approx(0.972), 'metadata', pytest.approx(0.972))
    assert info['models'] == [str(run)] and info['tta'] == 'none' and set(info['timings']) >= {'tissue_s', 'predict_s', 'total_s'}
    # regions: QuPath annotations whose tiles are the connected tiles of the smoothed grid at >= 0.5, two tiles or more
    g = json.loads((out/'regions.geojson').read_text())
    assert g['type'] == 'FeatureCollection' and len(g['features']) == info['n_regions'] >= 1
    assert info['regions']['smooth']['sigma_cells'] == 1 and info['regions']['min_area_um2'] == 10_000
    lab, n = ndimage.label(np.nan_to_num(smooth_heat(heat, 1.), nan=0) >= 0.5)
    sizes = np.bincount(lab.ravel())[1:]
    assert sorted(f['properties']['n_tiles'] for f in g['features']) == sorted(sizes[sizes >= 2])  # 10,000 µm²: 2 tiles of 8,709
    for f in g['features']:
        p = f['properties']
        assert p['objectType'] == 'annotation' and p['classification']['name'] == 'Tumor'
        assert p['area_px'] == p['n_tiles']*96*96 and p['area_um2'] == pytest.approx(p['area_px']*0.972**2)
        ext = np.asarray(f['geometry']['coordinates'][0], float)
        assert (ext[0] == ext[-1]).all() and (ext % 96 == 0).all()
    big = max(g['features'], key=lambda f: f['properties']['n_tiles'])
    x0, y0 = np.asarray(big['geometry']['coordinates'][0]).min(0)//96
    x1, y1 = np.asarray(big['geometry']['coordinates'][0]).max(0)//96
    ell = np.argwhere(m[:, :9] == 1)
    assert (ell.min(0) + 1 >= (y0, x0)).all() and ((y1, x1) >= ell.max(0)).all() and x1 <= 9  # covers the ellipse (smoothing may shave
                                                                                              # a one-tile tip), stops at glass
    mask = np.asarray(Image.open(out/'mask.png'))
    assert mask.shape == (m.shape[0]*96, m.shape[1]*96) and set(np.unique(mask)) == {0, 255}

def test_synthetic_slide_tiffslide_and_fallback(run, slide, small, tmp_path, monkeypatch):
    fn, m = slide
    res = predict_slides(run, [fn], tmp_path/'a', reader='tiffslide', **Q)
    assert res[0]['reader'] == 'tiffslide'
    check_outputs(tmp_path/'a'/'case-01', m)
    # where OpenSlide is absent, 'auto' falls back to tiffslide; where neither is, one line names the extra
    real = wsi._import_reader
    monkeypatch.setattr(wsi, '_import_reader', lambda n: None if n == 'openslide' else real(n))
    assert predict_slides(run, [small], tmp_path/'b', **Q)[0]['reader'] == 'tiffslide'
    monkeypatch.setattr(wsi, '_import_reader', lambda n: None)
    with pytest.raises(HistoError, match=r"pip install 'histo_lib\[slide\]'"): predict_slides(run, [small], tmp_path/'c', **Q)
    with pytest.raises(HistoError, match=r"histo_lib\[slide\]"): Slide(small)

def test_resolution_from_mpp_and_overrides(run, tmp_path):
    "A slide scanned at twice PCam's resolution is read at level 1; without MPP level 0 with a warning; --level and --mpp override."
    m = tumour_map(10, 12); m[:, 9] = 0
    fn = synth_slide(tmp_path/'fine.tif', m, seed=7, cell=192, mpp=0.972/2)
    info = predict_slides(run, [fn], tmp_path/'o', **Q)[0]
    assert (info['level'], info['tile_l0'], info['read_mpp']) == (1, 192, pytest.approx(0.972))
    check_outputs(tmp_path/'o'/'fine', m, cell=192)
    nompp = synth_slide(tmp_path/'nompp.tif', m, seed=7, cell=192, mpp=None)
    with pytest.warns(SlideWarning, match='no MPP'): info = predict_slides(run, [nompp], tmp_path/'o', **Q)[0]
    assert (info['level'], info['tile_l0'], info['slide_mpp'], info['resolution']) == (0, 96, None, 'level 0 (no MPP)')
    info = predict_slides(run, [nompp], tmp_path/'l', level=1, **Q)[0]
    assert (info['level'], info['tile_l0'], info['resolution']) == (1, 192, 'level')
    check_outputs(tmp_path/'l'/'nompp', m, cell=192)
    info = predict_slides(run, [nompp], tmp_path/'m', mpp=0.972/2, **Q)[0]
    assert (info['level'], info['mpp_source'], info['slide_mpp']) == (1, 'given', pytest.approx(0.486))
    with pytest.raises(HistoError, match='not both'): predict_slides(run, [nompp], tmp_path/'x', level=1, mpp=0.5, **Q)

def test_bad_slides_one_line_each_and_others_run(run, slide, tmp_path, capsys):
    fn, m = slide
    d = tmp_path/'in'; d.mkdir()
    (d/'notes.svs').write_text('this is not a slide\n')
    good = synth_slide(d/'good.tif', np.ones((4, 5), int), seed=2)
    data = good.read_bytes()
    (d/'cut.tif').write_bytes(data[:len(data)*6//10])  # truncated: the tile data and the last levels are gone
    res = predict_slides(run, [d, fn], tmp_path/'out', **Q)
    assert [(Path(r['slide']).name, r['status']) for r in res] == [
        ('cut.tif', 'failed'), ('good.tif', 'done'), ('notes.svs', 'failed'), ('case-01.tif', 'done')]
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 2, err
    assert 'cut.tif' in err[0] and 'notes.svs' in err[1] and all(l.endswith('skipped.') for l in err)
    assert not (tmp_path/'out'/'cut'/'slide.json').exists() and not (tmp_path/'out'/'notes'/'slide.json').exists()
    check_outputs(tmp_path/'out'/'case-01', m)

def test_rerun_skips_finished_unless_overwrite(run, small, tmp_path, capsys):
    predict_slides(run, [small], tmp_path, **Q)
    sj = tmp_path/'small-01'/'slide.json'
    first = sj.read_text(); os.utime(sj, (1, 1))
    res = predict_slides(run, [small], tmp_path, **Q)
    assert res[0]['status'] == 'skipped' and sj.stat().st_mtime == 1 and sj.read_text() == first
    assert 'already done' in capsys.readouterr().out
    res = predict_slides(run, [small], tmp_path, overwrite=True, **Q)
    assert res[0]['status'] == 'done' and sj.stat().st_mtime > 1

def test_paths_split_and_errors(run, slide, tmp_path):
    fn, _ = slide
    assert split_runs([str(run), str(fn)]) == ([str(run)], [str(fn)])
    assert split_runs([run/'model.json', run, fn.parent]) == ([run/'model.json', run], [fn.parent])
    with pytest.raises(HistoError, match='No model'): split_runs([fn])
    with pytest.raises(HistoError, match='no such slide'): predict_slides(run, [tmp_path/'missing.svs'], tmp_path, **Q)
    with pytest.raises(HistoError, match='holds no slides'): find_slides([tmp_path])
    with pytest.raises(HistoError, match='smaller than'): predict_slides(run, [fn], tmp_path/'t', tile=32, **Q)

def test_histo_slide_to_a_log_prints_lines_not_bars(run, small, tmp_path):
    "`histo slide ... > log` (issue 24): stdout is not a terminal, so one line per phase and no progress bar's carriage returns."
    env = {k: v for k, v in os.environ.items() if k != 'HISTO_PROGRESS'}
    with open(tmp_path/'log', 'w') as out, open(tmp_path/'err', 'w') as err:
        r = subprocess.run(histo_cmd()+['slide', str(run), str(small), '--out', str(tmp_path/'o'), '--tta', 'none', '--bs', '4'],
                           stdout=out, stderr=err, env=env, cwd=tmp_path, timeout=600)
    log, errs = (tmp_path/'log').read_bytes(), (tmp_path/'err').read_bytes()  # bytes: text mode reads a '\r' as '\n'
    assert r.returncode == 0, errs[-3000:]
    assert b'\r' not in log + errs and '█'.encode() not in log + errs, log
    lines = log.decode().splitlines()
    assert any('small-01: 20 tissue tiles of 20' in l for l in lines) and any('small-01: predicted 20 tiles' in l for l in lines), log
    assert (tmp_path/'o'/'small-01'/'slide.json').is_file() and len(lines) <= 6, log

def test_histo_slide_detections_min_area_and_smoothing(run, slide, tmp_path):
    "`histo slide` writes every tissue tile as a QuPath detection carrying tiles.csv's prob; --min-area and --smooth shape the regions and slide.json records them."
    fn, m = slide
    histo('slide', run, fn, '--out', tmp_path/'d', '--tta', 'none', '--quiet')
    out = tmp_path/'d'/'case-01'
    tiles, det = pd.read_csv(out/'tiles.csv'), json.loads((out/'detections.geojson').read_text())
    assert det['type'] == 'FeatureCollection' and len(det['features']) == len(tiles) > 0
    for f, t in zip(det['features'], tiles.itertuples()):
        assert f['type'] == 'Feature' and f['properties']['objectType'] == 'detection'
        assert f['properties']['measurements'] == {'prob': pytest.approx(t.prob, rel=1e-5)}
        ring = np.asarray(f['geometry']['coordinates'][0])
        assert f['geometry']['type'] == 'Polygon' and (ring[0] == ring[-1]).all() and len(ring) == 5
        assert (ring.min(0) == (t.x, t.y)).all() and (ring.max(0) == (t.x+t.w, t.y+t.h)).all()
    # no smoothing and no minimum: the raw grid's connected tiles, single tiles included; a huge minimum: none
    histo('slide', run, fn, '--out', tmp_path/'raw', '--tta', 'none', '--quiet', '--smooth', 0, '--min-area', 0)
    info = json.loads((tmp_path/'raw'/'case-01'/'slide.json').read_text())
    heat = np.load(tmp_path/'raw'/'case-01'/'heatmap.npy')
    assert info['regions']['smooth']['sigma_cells'] == 0 and info['regions']['min_area_um2'] == 0
    assert info['n_regions'] == ndimage.label(np.nan_to_num(heat, nan=0) >= 0.5)[1]
    histo('slide', run, fn, '--out', tmp_path/'none', '--tta', 'none', '--quiet', '--min-area', 1e9)
    assert json.loads((tmp_path/'none'/'case-01'/'slide.json').read_text())['n_regions'] == 0
    one_line(histo('slide', run, fn, '--out', tmp_path/'x', '--min-area', -1, ok=False), 'must be 0 or more', '-1')

def test_pcam_mosaic(pcam, tmp_path):
    "Real H&E: PCam validation patches in a mosaic are read back exactly at their tiles, and the tissue detector finds them."
    fns = sorted((pcam/'valid').glob('*/*.jpg'))
    fns = [fns[i] for i in np.random.default_rng(0).choice(len(fns), 70, replace=False)]
    px = np.stack([np.asarray(Image.open(f).convert('RGB')) for f in fns])
    cells = np.full((10, 11), -1); cells[1:8, 1:10] = np.arange(63).reshape(7, 9); cells[3:5, 4:6] = -1
    fn = write_slide(tmp_path/'pcam.tif', cells, px, compression='zlib', origin=(0, 0))
    for reader in ('openslide', 'tiffslide'):
        with Slide(fn, reader) as s:
            plan = read_plan(s.downsamples, s.mpp)
            xs, ys = tile_grid(*s.dims[0], plan)
            r, c = np.nonzero(cells >= 0)
            assert (read_tiles(s, plan, xs[c], ys[r]) == px[cells[r, c]]).all()
    # a fixed model (no training): logit = mean darkness; only the tiling and the tissue mask matter here
    from histo_lib.models import build_model
    model = build_model('reference', widths=(8,), dense=8).eval()
    cfg = dict(arch='reference', crop=64, mean=[0.5]*3, std=[0.25]*3, model_kwargs=dict(widths=(8,), dense=8))
    info = predict_slides([(model, cfg)], [fn], tmp_path/'out', backend='torch', **Q)[0]
    tiles = pd.read_csv(tmp_path/'out'/'pcam'/'tiles.csv')
    cell_of = cells[tiles.y//96, tiles.x//96]
    assert (cell_of >= 0).all()                         # no glass cell predicted
    assert len(tiles) >= 0.85*(cells >= 0).sum()        # real tissue found (a few PCam patches are nearly blank)
    assert info['tissue']['saturation_threshold'] <= 0.1

def test_real_slide_tile_auc_is_patch_auc(pcam, pcam_run, tmp_path):
    "`histo synth --format slide --from DIR`: a slide of real PCam patches on which a real model's tile AUC is its patch AUC."
    from histo_lib.synth import folder_patches
    from histo_lib.infer import predict
    from conftest import histo
    histo('synth', tmp_path/'s', '--format', 'slide', '--seed', 7, '--from', pcam/'valid')
    m = np.loadtxt(tmp_path/'s'/'truth.csv', delimiter=',', dtype=int)
    predict_slides([pcam_run], [tmp_path/'s'/'slide.tif'], tmp_path/'out', backend='torch', **Q)
    tiles = pd.read_csv(tmp_path/'out'/'slide'/'tiles.csv')
    r, c = tiles.y//96, tiles.x//96
    assert (m[r, c] >= 0).all() and len(tiles) >= 0.95*(m >= 0).sum()    # tissue found, glass skipped
    n1, n0 = int((m==1).sum()), int((m==0).sum())                          # the patches the slide holds, cell by cell
    x = np.concatenate([folder_patches(pcam/'valid', 1, n1, (7, 1)), folder_patches(pcam/'valid', 0, n0, (7, 0))])
    grid = np.full(m.shape, np.nan); grid[m==1], grid[m==0] = np.split(predict([pcam_run], x, **Q), [n1])
    assert np.abs(grid[r, c] - tiles.prob).max() < 0.1                     # each tile scored as its patch (JPEG tiles:
                                                                           # up to 0.054 for the demo's model)
    tile_auc, patch_auc = roc_auc_score(m[r, c], tiles.prob), roc_auc_score(m[m>=0], grid[m>=0])
    assert patch_auc > 0.65 and abs(tile_auc - patch_auc) < 0.01, (tile_auc, patch_auc)
