"`histo extract` end to end: synthetic slides outlined in GeoJSON and ASAP XML -> a Kaggle-layout set that `histo train --groups` reads."
from __future__ import annotations
import shutil, subprocess, sys
import numpy as np, pandas as pd, pytest, tifffile
from matplotlib.path import Path as MPath
from histo_lib.synth import synth_slide
from histo_lib.annotations import write_geojson, write_asap_xml
from histo_lib.wsi import Slide
from conftest import histo, tiny_settings

pytest.importorskip('openslide'); pytest.importorskip('tiffslide')

def disc(cx, cy, r, n=48):
    "A polygon close to a circle (level-0 px): its outline crosses cells, so some centre squares are partly tumour."
    a = np.linspace(0, 2*np.pi, n, endpoint=False)
    return np.stack([cx + r*np.cos(a), cy + r*np.sin(a)], 1)

def square(x0, y0, x1, y1): return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)

OUTLINES = {  # slide -> its annotations: a tumour disc, with an exclusion inside case-01's
    'case-01': [dict(cls='tumour', exterior=disc(430, 420, 230), holes=[], name='t1'),
                dict(cls='exclusion', exterior=square(320, 320, 448, 448), holes=[], name='x1')],
    'case-02': [dict(cls='tumour', exterior=disc(600, 380, 170), holes=[], name='t2')],
    'a-normal': [],
}

def truth_map(polys, rows=8, cols=10):
    "The synthetic slide's cells: tumour where the cell's centre is inside tumour, glass in the top row."
    m = np.zeros((rows, cols), int); m[0] = -1
    yy, xx = (np.mgrid[:rows, :cols] + 0.5)*96
    m[(m==0) & in_tumour(polys, xx.ravel(), yy.ravel()).reshape(rows, cols)] = 1
    return m

def in_tumour(polys, x, y):
    "Whether each point (x, y) is tumour by the outlines (matplotlib's point-in-polygon, not the library's rasteriser)."
    pts, res = np.stack([x, y], 1), np.zeros(len(x), bool)
    for p in polys:
        inside = MPath(p['exterior']).contains_points(pts)
        res = (res | inside) if p['cls']=='tumour' else (res & ~inside)
    return res

@pytest.fixture(scope='module')
def annotated(tmp_path_factory):
    "Three 8x10-cell slides at 0.972 µm/px (lossless), case-01 outlined in GeoJSON, case-02 in ASAP XML, a-normal without a file; extracted once."
    d = tmp_path_factory.mktemp('extract')
    (d/'slides').mkdir(); (d/'truth').mkdir()
    for k,(name, polys) in enumerate(OUTLINES.items()):
        synth_slide(d/'slides'/f'{name}.tif', truth_map(polys), seed=k, compression='zlib')
    write_geojson(OUTLINES['case-01'], d/'truth'/'case-01.geojson'); write_asap_xml(OUTLINES['case-02'], d/'truth'/'case-02.xml')
    r = histo('extract', d/'slides', '--truth', d/'truth', '--out', d/'data', '--per-slide', 60)
    return d, r

def test_extract_labels_pixels_balance(annotated):
    d, r = annotated
    data = d/'data'
    pt = pd.read_csv(data/'patches.csv')
    assert list(pt.columns[:5]) == ['id', 'slide', 'x', 'y', 'label'] and pt['id'].is_unique
    # balance: up to 30 of each class per slide; the normal slide (no annotation file) gives normal patches only
    counts = pt.groupby('slide')['label'].agg(['size', 'sum'])
    assert counts.loc['case-01'].tolist() == [60, 30] and counts.loc['case-02'].tolist() == [60, 30], counts
    assert counts.loc['a-normal'].tolist() == [30, 0], counts
    # every label is the outlines' at the patch's centre, and its whole centre 32x32 agrees (partly tumour: skipped)
    for name, g in pt.groupby('slide'):
        polys = OUTLINES[name]
        assert (in_tumour(polys, g.x.values+48., g.y.values+48.) == g.label.values.astype(bool)).all(), name
        corners = [in_tumour(polys, g.x.values+32.5+dx, g.y.values+32.5+dy) for dx in (0, 31) for dy in (0, 31)]
        assert all((c == g.label.values.astype(bool)).all() for c in corners), name
    assert ((pt.label == 1) == (pt.cover == 1)).all() and pt.cover.isin([0, 1]).all()
    # the Kaggle layout, and ids_to_slides as `histo train --groups` reads it
    tl, ids = pd.read_csv(data/'train_labels.csv'), pd.read_csv(data/'ids_to_slides.csv')
    assert tl.values.tolist() == pt[['id', 'label']].values.tolist() and ids.values.tolist() == pt[['id', 'slide']].values.tolist()
    assert sorted(p.stem for p in (data/'train').iterdir()) == sorted(pt['id'])
    # the slide's own pixels (its MPP is the model's: level 0 read as it is)
    for name, g in pt.groupby('slide'):
        with Slide(d/'slides'/f'{name}.tif') as s:
            for row in g.itertuples():
                assert np.array_equal(tifffile.imread(data/'train'/f'{row.id}.tif'), s.read(0, row.x, row.y, 96, 96)), (name, row.id)
    assert 'case-01.geojson: 1 tumour polygon(s)' in r.stdout and 'no annotation: all normal' in r.stdout

def test_extract_resumes(annotated, tmp_path):
    d, _ = annotated
    data = tmp_path/'data'; shutil.copytree(d/'data', data)
    files = sorted(p for p in data.rglob('*') if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    r = histo('extract', d/'slides', '--truth', d/'truth', '--out', data, '--per-slide', 60)
    assert r.stdout.count('already done') == 3
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob('*') if p.is_file()} == before   # nothing written
    # a run killed in case-02 (its rows not written, a patch left half-moved): the rerun finishes it, byte for byte
    (data/'slides'/'case-02.csv').unlink()
    (data/'train'/'0123456789abcdef0123456789abcdef01234567.tif').write_bytes(b'left over')
    histo('extract', d/'slides', '--truth', d/'truth', '--out', data, '--per-slide', 60)
    assert {p: p.read_bytes() for p in data.rglob('*') if p.is_file()} == {p: v[1] for p,v in before.items()}
    r = histo('extract', d/'slides', '--truth', d/'truth', '--out', data, '--per-slide', 80, ok=False)
    assert r.returncode == 2 and 'per_slide 60 (now 80)' in r.stderr and 'Traceback' not in r.stderr

def test_extract_bad_annotation(annotated, tmp_path):
    d, _ = annotated
    truth = tmp_path/'truth'; shutil.copytree(d/'truth', truth)
    (truth/'case-02.xml').write_text('this is not an annotation file')
    r = histo('extract', d/'slides', '--truth', truth, '--out', tmp_path/'data', '--per-slide', 20, ok=False)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(err) == 2, r.stderr
    assert 'case-02.xml' in err[0] and '1 of 3 slides could not be extracted' in err[1], err
    assert set(pd.read_csv(tmp_path/'data'/'patches.csv')['slide']) == {'case-01', 'a-normal'}

def test_extract_then_train(annotated, tmp_path):
    """`histo train DATA --groups DATA/ids_to_slides.csv` trains on it, whole slides held out (a tiny model, one epoch); the seed's
    first draw would hold out the normal slide alone (one class: no AUC), so the split takes the next one."""
    d, _ = annotated
    tiny_settings(tmp_path, "epochs = 1\nbs = 32\n")
    r = histo('train', d/'data', '--groups', d/'data'/'ids_to_slides.csv', '--out', tmp_path/'run', cwd=tmp_path)
    assert (tmp_path/'run'/'model.safetensors').is_file(), r.stdout
    from sklearn.model_selection import GroupShuffleSplit
    ids = pd.read_csv(d/'data'/'ids_to_slides.csv')
    _, va = next(GroupShuffleSplit(1, test_size=0.2, random_state=42).split(ids, groups=ids['slide']))
    assert set(ids['slide'].iloc[va]) == {'a-normal'}

def test_extract_without_the_slide_extra(annotated, tmp_path):
    "A base install (no OpenSlide, tiffslide or scikit-image): one line naming the extra, before any folder is made."
    d, _ = annotated
    code = ("import sys\nfor m in ('openslide', 'tiffslide', 'skimage'): sys.modules[m] = None\n"
            "from histo_lib.cli import main\nmain(sys.argv[1:])")
    r = subprocess.run([sys.executable, '-c', code, 'extract', d/'slides', '--truth', d/'truth', '--out', tmp_path/'data'],
                       capture_output=True, text=True, timeout=300)
    err = r.stderr.strip()
    assert r.returncode == 2 and err.count('\n') == 0 and "pip install 'histo_lib[slide]'" in err, r
    assert not (tmp_path/'data').exists() and 'torch' not in err
