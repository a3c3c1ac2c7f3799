"Data layer: the three layouts, every bad-input check, the cache, splits and DataLoaders."
import shutil
import numpy as np, pandas as pd, pytest, tifffile, h5py
from PIL import Image
from histo_lib.core import HistoError
from histo_lib import cache, data, patches
from histo_lib.synth import make_synth, make_synth_folder, make_synth_h5

@pytest.fixture(scope='module')
def kaggle(tmp_path_factory): return make_synth(tmp_path_factory.mktemp('k')/'kaggle', n_train=40, n_test=12, seed=1)

@pytest.fixture
def kcopy(kaggle, tmp_path):
    dst = tmp_path/'kaggle'; shutil.copytree(kaggle, dst); return dst

# --- layouts ---------------------------------------------------------------------------------------------------
def test_kaggle_layout(kaggle):
    assert patches.detect_layout(kaggle)=='kaggle'
    tr, te = patches.load_items(kaggle, 'train'), patches.load_items(kaggle, 'test')
    assert (len(tr), len(te)) == (40, 12)
    assert set(tr.label.unique()) <= {0., 1.} and te.label.isna().all()
    assert list(te.id) == list(pd.read_csv(kaggle/'sample_submission.csv').id)  # the sample's order
    x, _ = cache.decode_items(tr, progress=False)
    assert x.shape == (40,96,96,3) and x.dtype == np.uint8

def test_folder_layout(tmp_path):
    root = make_synth_folder(tmp_path/'f', n_per_class=6, seed=2)
    assert patches.detect_layout(root)=='folder'
    tr, va = patches.load_items(root, 'train'), patches.load_items(root, 'valid')
    assert (len(tr), tr.label.sum(), len(va)) == (12, 6, 12)
    dls = data.histo_dls(root, crop=32, bs=4)
    assert (len(dls.items['train']), len(dls.items['valid'])) == (12, 12)  # its own valid/ is the validation set
    xb, yb = dls.train.one_batch()
    assert xb.shape == (4,3,32,32) and yb.shape == (4,)

def test_h5_layout(tmp_path):
    root = make_synth_h5(tmp_path/'h', n=10, seed=3)
    assert patches.detect_layout(root)=='h5'
    tr = patches.load_items(root, 'train')
    assert len(tr)==10 and tr.src.iloc[0].endswith('#0')
    x, _ = cache.decode_items(tr, cache=False, progress=False)
    with h5py.File(root/'camelyonpatch_level_2_split_train_x.h5') as f: np.testing.assert_array_equal(x, f['x'][:])
    shuffled = tr.src.values[[3,1,7]]  # out-of-order rows are read in order and put back
    np.testing.assert_array_equal(cache.read_patches(shuffled), x[[3,1,7]])

def test_images_layout_unlabelled(kaggle):
    items = patches.load_items(kaggle/'test', 'test')
    assert patches.detect_layout(kaggle/'test')=='images' and len(items)==12 and items.label.isna().all()

# --- bad input: each check names the culprit -------------------------------------------------------------------
def _labels(root, **kw):
    df = pd.read_csv(root/'train_labels.csv'); return df

def test_bad_labels(kcopy):
    df = _labels(kcopy); df.loc[3,'label'] = 2; df.loc[5,'label'] = np.nan; df.to_csv(kcopy/'train_labels.csv', index=False)
    with pytest.raises(HistoError, match=f"2 labels are not 0 or 1.*{df.id[3]}"): patches.load_items(kcopy)

def test_duplicate_ids(kcopy):
    df = _labels(kcopy); df = pd.concat([df, df.iloc[[0]]]); df.to_csv(kcopy/'train_labels.csv', index=False)
    with pytest.raises(HistoError, match=f"1 ids appear more than once: {df.id.iloc[0]}"): patches.load_items(kcopy)

def test_csv_id_without_file(kcopy):
    df = _labels(kcopy); victim = df.id[0]; (kcopy/'train'/f'{victim}.tif').unlink()
    with pytest.raises(HistoError, match=f"1 ids have no image in .*{victim}"): patches.load_items(kcopy)

def test_file_without_csv_row(kcopy):
    df = _labels(kcopy); df.iloc[1:].to_csv(kcopy/'train_labels.csv', index=False)
    with pytest.raises(HistoError, match=f"1 images have no row in train_labels.csv: {df.id[0]}"): patches.load_items(kcopy)

def test_empty_folder(tmp_path):
    (tmp_path/'e').mkdir()
    with pytest.raises(HistoError, match='holds no dataset'): patches.load_items(tmp_path/'e')
    (tmp_path/'f'/'0').mkdir(parents=True); (tmp_path/'f'/'1').mkdir()
    with pytest.raises(HistoError, match='is empty'): patches.load_items(tmp_path/'f')

def test_missing_folder(tmp_path):
    with pytest.raises(HistoError, match='does not exist'): patches.load_items(tmp_path/'nope')

def test_corrupt_truncated_wrong_size_and_channels(kcopy):
    ids = _labels(kcopy).id
    (kcopy/'train'/f'{ids[0]}.tif').write_bytes(b'II*\x00not a tiff')                     # corrupt
    raw = (kcopy/'train'/f'{ids[1]}.tif').read_bytes(); (kcopy/'train'/f'{ids[1]}.tif').write_bytes(raw[:len(raw)//3])  # truncated
    tifffile.imwrite(kcopy/'train'/f'{ids[2]}.tif', np.zeros((64,64,3), np.uint8))        # wrong size
    tifffile.imwrite(kcopy/'train'/f'{ids[3]}.tif', np.zeros((96,96,2), np.uint8))        # 2 channels
    tifffile.imwrite(kcopy/'train'/f'{ids[4]}.tif', np.full((96,96), 128, np.uint8))      # grayscale: converted
    items = patches.load_items(kcopy)
    with pytest.raises(HistoError) as e: cache.decode_items(items, progress=False)
    msg = str(e.value)
    assert msg.startswith('4 of 40 images are unusable') and ids[0] in msg and ids[2] in msg and 'skip_bad' in msg
    x, kept = cache.decode_items(items, skip_bad=True, report=kcopy/'dropped.csv', progress=False)
    assert len(kept)==36 and set(ids[:4]).isdisjoint(kept.id) and ids[4] in set(kept.id)
    rep = pd.read_csv(kcopy/'dropped.csv')
    assert set(rep.id) == set(ids[:5]) and rep.reason.str.contains('converted grayscale').sum()==1
    assert (x[list(kept.id).index(ids[4])]==128).all()

def test_rgba_converted(tmp_path):
    (tmp_path/'d'/'0').mkdir(parents=True); (tmp_path/'d'/'1').mkdir()
    rgba = np.dstack([np.full((96,96,3), 7, np.uint8), np.full((96,96,1), 255, np.uint8)])
    for c in '01': Image.fromarray(rgba).save(tmp_path/'d'/c/f'a{c}.png')
    x, kept = cache.decode_items(patches.load_items(tmp_path/'d'), cache=False, skip_bad=True, report=tmp_path/'r.csv', progress=False)
    assert x.shape==(2,96,96,3) and (x==7).all()
    assert pd.read_csv(tmp_path/'r.csv').reason.str.contains('alpha').all()

def test_with_labels(kaggle, tmp_path):
    "Labels join by id, not by position: the answers CSV is written in reverse order and every id must keep its own label."
    items = patches.load_items(kaggle, 'test')
    truth = pd.read_csv(kaggle/'test_labels.csv', dtype={'id': str})
    assert truth.label.nunique()==2
    truth.iloc[::-1].to_csv(tmp_path/'rev.csv', index=False)
    te = patches.with_labels(items, tmp_path/'rev.csv')
    want = truth.set_index('id')['label'].astype(float)
    assert list(te.id)==list(items.id) and list(te.label)==list(want.loc[te.id])
    assert list(te.label)!=list(truth.label.iloc[::-1].iloc[:len(te)])  # a positional join would give this

# --- cache -----------------------------------------------------------------------------------------------------
def test_cache_is_used_and_keyed(kcopy, tmp_path, monkeypatch):
    items = patches.load_items(kcopy)
    x1, _ = cache.decode_items(items, cache=tmp_path/'c', progress=False)
    assert isinstance(x1, np.memmap) and len(list((tmp_path/'c').glob('*.npy')))==1
    monkeypatch.setattr(cache, 'read_patch', lambda s: (_ for _ in ()).throw(AssertionError('decoded again')))
    x2, _ = cache.decode_items(items, cache=tmp_path/'c', progress=False)   # no decoding: straight from the memmap
    np.testing.assert_array_equal(x1, x2)
    assert cache.cache_key(items.src) != cache.cache_key(items.src[:-1])          # another file list, another cache


def test_drop_outliers(kcopy):
    "Blank patches in the training split are dropped from it; at least one lands there, so a drop that does nothing fails."
    blank = list(_labels(kcopy).id[:4])
    for i in blank: tifffile.imwrite(kcopy/'train'/f'{i}.tif', np.full((96,96,3), 250, np.uint8))
    tr_all = data.histo_dls(kcopy, crop=32, bs=4, valid_pct=0.25).items['train']
    tr_kept = data.histo_dls(kcopy, crop=32, bs=4, valid_pct=0.25, drop_outliers=True).items['train']
    n_in = len(set(blank) & set(tr_all.id))
    assert n_in>=1 and len(tr_kept)==len(tr_all)-n_in and not set(blank) & set(tr_kept.id)

# --- both doors: histo_dls(folder, ...) and histo_dblock(...).dataloaders(folder) -----------------------------------
doors = dict(histo_dls=lambda p, bs=4, **kw: data.histo_dls(p, crop=32, bs=bs, **kw),
             dblock=lambda p, bs=4, **kw: data.histo_dblock(crop=32, **kw).dataloaders(p, bs=bs))

def _bad_label(k): df = _labels(k); df.loc[3,'label'] = 2; df.to_csv(k/'train_labels.csv', index=False)
def _dup_id(k): df = _labels(k); pd.concat([df, df.iloc[[0]]]).to_csv(k/'train_labels.csv', index=False)
def _no_file(k): (k/'train'/f'{_labels(k).id[5]}.tif').unlink()
def _one_class(k): _labels(k).assign(label=0).to_csv(k/'train_labels.csv', index=False)
def _truncated(k):
    f = k/'train'/f'{_labels(k).id[1]}.tif'; raw = f.read_bytes(); f.write_bytes(raw[:len(raw)//3])

@pytest.mark.parametrize('door', doors)
@pytest.mark.parametrize('spoil,msg', [(_bad_label, '1 labels are not 0 or 1'), (_dup_id, '1 ids appear more than once'),
                                       (_no_file, '1 ids have no image'), (_one_class, 'The training data of .* holds one class only'),
                                       (_truncated, '1 of 40 images are unusable')])
def test_bad_input_both_doors(kcopy, door, spoil, msg):
    spoil(kcopy)
    with pytest.raises(HistoError, match=msg): doors[door](kcopy)

@pytest.mark.parametrize('door', doors)
def test_skip_bad_both_doors(kcopy, door):
    _truncated(kcopy)
    dls = doors[door](kcopy, skip_bad=True, report=kcopy/'dropped.csv', valid_pct=0.25)
    assert len(dls.items['train'])+len(dls.items['valid'])==39 and len(pd.read_csv(kcopy/'dropped.csv'))==1

def test_doors_agree_and_stain_fit_is_training_only(kcopy):
    "The DataBlock's door gives histo_dls' items, statistics and stain normalizer; that normalizer is the training items' own."
    from histo_lib.stain import fit_stain_norm, normalize_batch
    tifffile.imwrite(kcopy/'train'/f'{_labels(kcopy).id[0]}.tif', np.full((96,96,3), 250, np.uint8))
    kw = dict(stain_norm='macenko', drop_outliers=True, valid_pct=0.25)
    a, b = data.histo_dls(kcopy, crop=64, **kw), data.histo_dblock(crop=64, **kw).dataloaders(kcopy, bs=32)
    for k in ('train', 'valid'): pd.testing.assert_frame_equal(a.items[k], b.items[k])
    np.testing.assert_allclose(a.stats, b.stats, rtol=1e-12)
    x, _ = cache.decode_items(a.items['train'], cache=False, progress=False)
    vx, _ = cache.decode_items(a.items['valid'], cache=False, progress=False)
    ref = fit_stain_norm(x, 'macenko', 42)
    for dls in (a, b): np.testing.assert_array_equal(normalize_batch(dls.stain_norm, vx[:8]), normalize_batch(ref, vx[:8]))
    stats = data.channel_stats(normalize_batch(ref, x))
    np.testing.assert_allclose(a.stats, stats, rtol=1e-9)  # statistics of the normalized training pixels

def test_unknown_keywords_refused(kaggle):
    with pytest.raises(HistoError, match="unknown setting 'stainnorm'. Did you mean 'stain_norm'"): data.histo_dblock(crop=32, stainnorm='macenko')
    with pytest.raises(HistoError, match="unknown keyword 'bss'. Did you mean 'bs'"): data.histo_dblock(crop=32).dataloaders(kaggle, bss=16)

# --- the real sample -------------------------------------------------------------------------------------------
def test_pcam_mini_is_real_balanced_and_duplicate_free(pcam):
    "samples/pcam-mini: 2,000 train + 500 valid PCam patches (train/valid splits only), balanced, 96x96 JPEG, no picture twice, <= 15 MB."
    import hashlib
    from pathlib import Path
    tr, va = patches.load_items(pcam, 'train'), patches.load_items(pcam, 'valid')
    assert (len(tr), len(va)) == (2000, 500) and tr.label.mean() == va.label.mean() == 0.5
    files = [Path(s) for s in pd.concat([tr, va]).src]
    assert all(f.suffix == '.jpg' and f.name.startswith('patch') for f in files)     # PCam's test split is named testNNN
    assert not set(tr.id) & set(va.id) and sorted(p.name for p in pcam.iterdir()) == ['README.md', 'train', 'valid']
    assert len({hashlib.sha1(f.read_bytes()).hexdigest() for f in files}) == len(files)   # no byte-identical pair
    assert sum(f.stat().st_size for f in files) <= 15e6
    with Image.open(files[0]) as im: assert (im.format, im.size, im.mode) == ('JPEG', (96, 96), 'RGB')

# --- issue 15: the remaining bad inputs, each one line naming the culprit ----------------------------------------
def _h5(root, x, y=None):
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root/'camelyonpatch_level_2_split_train_x.h5', 'w') as f: f['x'] = x
    if y is not None:
        with h5py.File(root/'camelyonpatch_level_2_split_train_y.h5', 'w') as f: f['y'] = y
    return root

def test_h5_bad_labels(tmp_path):
    root = _h5(tmp_path/'h', np.zeros((4,96,96,3), np.uint8), np.array([0, 1, 2, 1]).reshape(4,1,1,1))
    with pytest.raises(HistoError, match=r"camelyonpatch_level_2_split_train_y.h5: 1 labels are not 0 or 1.*pcam_train_000002"): patches.load_items(root)
    (root/'camelyonpatch_level_2_split_train_y.h5').write_bytes(b'broken')
    with pytest.raises(HistoError, match=r"Cannot read .*_train_y.h5 as PCam HDF5 labels"): patches.load_items(root)

def test_h5_empty_and_wrong_shape(tmp_path):
    root = tmp_path/'e'; root.mkdir(); (root/'camelyonpatch_level_2_split_train_x.h5').write_bytes(b'')
    with pytest.raises(HistoError, match=r"Cannot read .*_train_x.h5 as PCam HDF5"): patches.load_items(root)
    with pytest.raises(HistoError, match=r"_train_x.h5 holds no patches"): patches.load_items(_h5(tmp_path/'z', np.zeros((0,96,96,3), np.uint8)))
    with pytest.raises(HistoError, match=r"x has shape \(3, 64, 64, 3\), expected \(N,96,96,3\)"): patches.load_items(_h5(tmp_path/'s', np.zeros((3,64,64,3), np.uint8)))

def test_empty_kaggle_train(kcopy):
    for p in (kcopy/'train').iterdir(): p.unlink()
    with pytest.raises(HistoError, match=r"train is empty: it should hold one .tif per id in train_labels.csv"): patches.load_items(kcopy)

def test_duplicate_imagefolder_files(tmp_path):
    root = make_synth_folder(tmp_path/'f', n_per_class=3, seed=2)
    a = sorted((root/'train'/'0').iterdir())[0]
    shutil.copy(a, root/'train'/'1'/a.name)                             # the same name in both classes
    with pytest.raises(HistoError, match=f"1 ids appear more than once: {a.stem}"): patches.load_items(root)
    (root/'train'/'1'/a.name).unlink(); Image.open(a).convert('RGB').save(a.with_suffix('.jpg'))  # the same id as .png and .jpg
    with pytest.raises(HistoError, match=f"1 ids appear more than once: {a.stem}"): patches.load_items(root)

def test_cache_half_written_or_concurrent(kcopy, tmp_path):
    import threading
    items = patches.load_items(kcopy); key = cache.cache_key(items.src); c = tmp_path/'c'
    x, _ = cache.decode_items(items, cache=c, progress=False)
    (c/f'{key}.json').unlink()                                          # a crash between the two files: rebuilt, not trusted
    np.testing.assert_array_equal(cache.decode_items(items, cache=c, progress=False)[0], x)
    (c/f'{key}.npy').write_bytes(b'half a file')                        # a torn .npy (no atomic rename): rebuilt
    np.testing.assert_array_equal(cache.decode_items(items, cache=c, progress=False)[0], x)
    c2, res = tmp_path/'c2', []
    ts = [threading.Thread(target=lambda: res.append(np.asarray(cache.decode_items(items, cache=c2, progress=False)[0]))) for _ in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(res)==3 and all((r==np.asarray(x)).all() for r in res)
    assert sorted(p.suffix for p in c2.iterdir())==['.json', '.lock', '.npy']   # one cache, no temporaries
