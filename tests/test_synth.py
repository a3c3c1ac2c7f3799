"Tests of `histo_lib.synth`: the synthetic datasets in Kaggle, ImageFolder and PCam HDF5 layouts."
from __future__ import annotations
import re
from pathlib import Path
import numpy as np, pandas as pd, pytest, tifffile, h5py
from PIL import Image
from histo_lib.core import HistoError
from histo_lib.synth import (synth_patches, make_synth, make_synth_folder, make_synth_h5, centre_box,
                             NEG, POS, DECOY)

def tree_bytes(d): return {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def kaggle(tmp_path_factory): return make_synth(tmp_path_factory.mktemp('synth')/'kaggle', n_train=30, n_test=10, seed=5)

def test_kaggle_files(kaggle):
    assert sorted(p.name for p in kaggle.iterdir()) == ['sample_submission.csv', 'synth.json', 'test', 'test_labels.csv',
                                                        'train', 'train_labels.csv']
    trn, sub, ans = (pd.read_csv(kaggle/f) for f in ('train_labels.csv', 'sample_submission.csv', 'test_labels.csv'))
    for df in (trn, sub, ans): assert list(df.columns) == ['id', 'label']
    assert (len(trn), len(sub), len(ans)) == (30, 10, 10)
    assert trn.label.sum() == 12 and ans.label.sum() == 4 and set(trn.label) == {0, 1}
    assert (sub.label == 0).all() and list(sub.id) == list(ans.id)
    assert all(re.fullmatch('[0-9a-f]{40}', i) for i in [*trn.id, *sub.id])
    assert not set(trn.id) & set(sub.id)

def test_kaggle_ids_match_files(kaggle):
    trn, sub = pd.read_csv(kaggle/'train_labels.csv'), pd.read_csv(kaggle/'sample_submission.csv')
    assert sorted(trn.id) == sorted(p.stem for p in (kaggle/'train').glob('*.tif'))
    assert sorted(sub.id) == sorted(p.stem for p in (kaggle/'test').glob('*.tif'))
    assert sorted(p.name for p in (kaggle/'test').iterdir()) == sorted(f'{i}.tif' for i in sub.id)  # answers kept apart
    img = tifffile.imread(kaggle/'test'/f'{sub.id[0]}.tif')
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8

def test_kaggle_train_is_synth_patches(kaggle):
    "The train tifs hold `synth_patches(n_train, seed)`, with labels to match."
    trn = pd.read_csv(kaggle/'train_labels.csv')
    imgs = np.stack([tifffile.imread(kaggle/'train'/f'{i}.tif') for i in trn.id])
    x, y = synth_patches(30, 5, pos_frac=0.4)
    order = [next(j for j in range(30) if (x[j] == img).all()) for img in imgs]
    assert sorted(order) == list(range(30))
    assert (y[order] == trn.label.values).all()

def test_deterministic(tmp_path):
    a = tree_bytes(make_synth(tmp_path/'a', n_train=8, n_test=4, seed=3))
    assert a == tree_bytes(make_synth(tmp_path/'b', n_train=8, n_test=4, seed=3))
    c = tree_bytes(make_synth(tmp_path/'c', n_train=8, n_test=4, seed=4))
    assert a['train_labels.csv'] != c['train_labels.csv']

def test_same_request_is_noop_and_other_is_refused(tmp_path):
    out = make_synth(tmp_path/'d', n_train=6, n_test=2, seed=1)
    stamp = (out/'train_labels.csv').stat().st_mtime_ns
    make_synth(tmp_path/'d', n_train=6, n_test=2, seed=1)
    assert (out/'train_labels.csv').stat().st_mtime_ns == stamp
    with pytest.raises(HistoError, match='overwrite=True'): make_synth(out, n_train=6, n_test=2, seed=2)
    make_synth(out, n_train=4, n_test=2, seed=2, overwrite=True)
    assert len(pd.read_csv(out/'train_labels.csv')) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

def test_never_deletes_a_non_dataset(tmp_path):
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'notes.txt').write_text('keep')
    with pytest.raises(HistoError, match='overwrite'): make_synth(tmp_path/'mine', n_train=4, n_test=2)
    with pytest.raises(HistoError, match='refusing'): make_synth(tmp_path/'mine', n_train=4, n_test=2, overwrite=True)
    assert (tmp_path/'mine'/'notes.txt').read_text() == 'keep'

def test_synth_patches_labels_follow_the_centre():
    x, y, kind = synth_patches(300, 7, with_kind=True)
    assert x.shape == (300, 96, 96, 3) and x.dtype == np.uint8 and y.dtype == np.uint8
    assert y.sum() == 150 and (kind == DECOY).sum() == 45 and (y == (kind == POS)).all()
    lo, hi = centre_box(96); dark = x.mean(-1) < 100
    centre = dark[:, lo:hi, lo:hi].mean((1, 2))
    assert centre[kind == POS].mean() > 3*centre[kind == NEG].mean()
    assert centre[kind == DECOY].mean() < 2*centre[kind == NEG].mean()
    assert dark[kind == DECOY].mean() > dark[kind == NEG].mean()  # decoys carry tumour, in the border

def test_synth_patches_deterministic_and_sized():
    assert synth_patches(5, 9)[0].tobytes() == synth_patches(5, 9)[0].tobytes()
    assert synth_patches(5, 9)[0].tobytes() != synth_patches(5, 10)[0].tobytes()
    assert synth_patches(3, 0, size=48)[0].shape == (3, 48, 48, 3)
    with pytest.raises(HistoError): synth_patches(3, 0, size=32)

def test_folder_layout(tmp_path):
    out = make_synth_folder(tmp_path/'f', n_per_class=2, seed=0)
    assert {str(p.relative_to(out)): len(list(p.glob('*.png'))) for p in sorted(out.glob('*/*'))} == \
           {'train/0': 2, 'train/1': 2, 'valid/0': 2, 'valid/1': 2}
    img = np.array(Image.open(next((out/'valid'/'0').glob('*.png'))))
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert tree_bytes(out) == tree_bytes(make_synth_folder(tmp_path/'g', n_per_class=2, seed=0))

def test_h5_schema(tmp_path):
    out = make_synth_h5(tmp_path/'h', n=4, seed=0)
    names = sorted(p.name for p in out.glob('*.h5'))
    assert names == sorted(f'camelyonpatch_level_2_split_{s}_{k}.h5' for s in ('train', 'valid', 'test') for k in 'xy')
    for s in ('train', 'valid', 'test'):
        with h5py.File(out/f'camelyonpatch_level_2_split_{s}_x.h5') as fx, h5py.File(out/f'camelyonpatch_level_2_split_{s}_y.h5') as fy:
            assert list(fx) == ['x'] and list(fy) == ['y']
            assert (fx['x'].shape, fx['x'].dtype, fy['y'].shape, fy['y'].dtype) == ((4, 96, 96, 3), np.uint8, (4, 1, 1, 1), np.uint8)
            assert set(np.unique(fy['y'][:])) == {0, 1}
    with h5py.File(out/'camelyonpatch_level_2_split_train_x.h5') as f: assert (f['x'][:] == synth_patches(4, 0)[0]).all()
    assert tree_bytes(out) == tree_bytes(make_synth_h5(tmp_path/'h2', n=4, seed=0))
