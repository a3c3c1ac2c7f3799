"Tests for histo_lib.stain: Macenko/Reinhard normalisation and H&E jitter."
from __future__ import annotations
import json
from pathlib import Path
import numpy as np, pytest, torch
from skimage.color import rgb2hed, hed2rgb
from fastai.vision.core import PILImage, TensorImage
from histo_lib.core import HistoError
from histo_lib.stain import (MacenkoNormalizer, ReinhardNormalizer, NoNormalizer, StainNormalizer, get_normalizer,
                             normalize_batch, lab_stats, StainNormalize, hed_jitter, HEDJitter, torch_rgb2hed, torch_hed2rgb)

torch.set_num_threads(1)
PCAM = Path(__file__).resolve().parents[2]/'shared'/'data'/'pcam-sample'
HE_TRUE = np.array([[0.5626,0.7201,0.4062],[0.2159,0.8012,0.5581]])

def fake_he(n=4, size=64, stain_scale=(1.,1.), seed=0, noise=0.02):
    "Synthetic H&E patches: nuclei blobs (H) and stroma (E) mixed with known stain vectors (Beer-Lambert)."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size,:size]
    imgs = []
    for _ in range(n):
        h = np.zeros((size,size))
        for cy,cx,r in rng.uniform([0,0,3],[size,size,7], (15,3)): h += np.exp(-((yy-cy)**2+(xx-cx)**2)/(2*r*r))
        h = np.clip(h, 0, 1)
        e = (0.4 + 0.6*rng.random((size,size)))*(1-h)
        od = np.stack([h*stain_scale[0], e*stain_scale[1]], -1) @ HE_TRUE + rng.normal(0, noise, (size,size,3))
        imgs.append(np.clip(240*np.exp(-od), 0, 255).round().astype(np.uint8))
    return np.stack(imgs)

def degenerate():
    return np.stack([np.full((32,32,3), v, np.uint8) for v in ([255,255,255], [0,0,0], [200,100,150], [120,60,140])])

def real_patches(n=24, seed=0):
    if not PCAM.exists(): pytest.skip(f"{PCAM} not present")
    from PIL import Image
    fns = sorted((PCAM/'valid').glob('*/*.jpg'))
    fns = [fns[i] for i in np.random.default_rng(seed).choice(len(fns), n, replace=False)]
    return np.stack([np.asarray(Image.open(f).convert('RGB')) for f in fns])

@pytest.fixture(scope='module')
def ref_src(): return fake_he(3, stain_scale=(0.6,0.8), seed=1), fake_he(3, stain_scale=(1.6,1.4), seed=2)

# --- Macenko -----------------------------------------------------------------------------------------------------
def test_macenko_recovers_stain_vectors(ref_src):
    mac = MacenkoNormalizer().fit(ref_src[0])
    cos = (mac.HERef*HE_TRUE.T).sum(0)
    assert (np.degrees(np.arccos(np.clip(cos, -1, 1))) < 5).all(), mac.HERef

def test_macenko_moves_towards_reference(ref_src):
    ref, src = ref_src
    out = MacenkoNormalizer().fit(ref).transform(src)
    assert out.shape==src.shape and out.dtype==np.uint8
    before, after = [np.abs(a.reshape(-1,3).mean(0)-ref.reshape(-1,3).mean(0)).max() for a in (src, out)]
    assert after < before/3, (before, after)

@pytest.mark.parametrize('cls', [MacenkoNormalizer, ReinhardNormalizer])
def test_degenerate_patches_pass_through(cls, ref_src):
    norm = cls().fit(ref_src[0])
    flat = degenerate()
    out = norm.transform(flat)
    np.testing.assert_array_equal(out, flat)
    # mixed in a batch with real tissue, the tissue is still normalised and nothing is NaN
    mixed = np.concatenate([flat, ref_src[1][:, :32, :32]])
    out = norm.transform(mixed)
    np.testing.assert_array_equal(out[:4], flat)
    assert not np.array_equal(out[4:], mixed[4:])

def test_degenerate_noisy_white_no_nan():
    rng = np.random.default_rng(0)
    white = np.clip(245 + rng.normal(0, 1.5, (2,32,32,3)), 0, 255).astype(np.uint8)
    for cls in (MacenkoNormalizer, ReinhardNormalizer):
        norm = cls().fit(fake_he(1))
        out = norm.transform(white)
        assert np.abs(out.astype(int)-white).max() <= 3

@pytest.mark.parametrize('cls', [MacenkoNormalizer, ReinhardNormalizer])
def test_fit_on_blank_reference_raises(cls):
    with pytest.raises(HistoError, match='reference'): cls().fit(degenerate())

@pytest.mark.parametrize('name', ['macenko', 'reinhard', 'none'])
def test_state_json_roundtrip(name, ref_src):
    ref, src = ref_src
    norm = get_normalizer(name).fit(ref)
    d = json.loads(json.dumps(norm.state()))
    norm2 = StainNormalizer.from_state(d)
    assert type(norm2) is type(norm)
    np.testing.assert_array_equal(norm2.transform(src), norm.transform(src))

def test_hwc_and_nhwc(ref_src):
    mac = MacenkoNormalizer().fit(ref_src[0][0])
    np.testing.assert_array_equal(mac.transform(ref_src[1][1]), mac.transform(ref_src[1])[1])
    np.testing.assert_array_equal(mac.transform(ref_src[1], bs=1), mac.transform(ref_src[1]))

def test_bad_input_raises():
    with pytest.raises(HistoError, match='uint8'): MacenkoNormalizer().transform(np.zeros((8,8,3), np.float32))
    with pytest.raises(HistoError, match='shape'): MacenkoNormalizer().transform(np.zeros((8,8), np.uint8))
    with pytest.raises(HistoError, match='call .fit'): ReinhardNormalizer().transform(fake_he(1))
    with pytest.raises(HistoError, match='Unknown'): StainNormalizer.from_state({'name': 'nope'})

def test_macenko_real_patches():
    imgs = real_patches()
    mac = MacenkoNormalizer().fit(imgs[:4])
    out = mac.transform(imgs[4:])
    assert out.shape==imgs[4:].shape
    # normalised patches vary less in mean colour than the raw ones
    assert out.reshape(len(out),-1,3).mean(1).std(0).mean() < imgs[4:].reshape(len(out),-1,3).mean(1).std(0).mean()

# --- Reinhard ----------------------------------------------------------------------------------------------------
def test_reinhard_matches_target_lab_stats(ref_src):
    ref, src = ref_src
    rei = ReinhardNormalizer().fit(ref[:1])
    tm, ts = lab_stats(ref[:1])
    np.testing.assert_allclose(rei.means, tm[0], atol=1e-4); np.testing.assert_allclose(rei.stds, ts[0], atol=1e-4)
    m, s = lab_stats(rei.transform(src))
    np.testing.assert_allclose(m, np.broadcast_to(tm, m.shape), atol=1.0)
    np.testing.assert_allclose(s, np.broadcast_to(ts, s.shape), rtol=0.1)

def test_reinhard_real_patches():
    imgs = real_patches()
    rei = ReinhardNormalizer().fit(imgs[0])
    tissue = imgs[1:][lab_stats(imgs[1:])[1][:,0] > 5]
    m, s = lab_stats(rei.transform(tissue))
    assert np.abs(m-rei.means).max(0)[0] < 2.0, np.abs(m-rei.means).max(0)
    assert np.median(np.abs(m-rei.means), 0).max() < 1.0
    assert np.median(np.abs(s/rei.stds-1), 0).max() < 0.1

# --- names, batches, fastai ----------------------------------------------------------------------------------------
def test_get_normalizer_and_batch(ref_src):
    ref, src = ref_src
    assert isinstance(get_normalizer('MACENKO'), MacenkoNormalizer)
    assert isinstance(get_normalizer(None), NoNormalizer)
    with pytest.raises(HistoError, match='macenko, reinhard, none'): get_normalizer('vahadane')
    mac = MacenkoNormalizer().fit(ref)
    np.testing.assert_array_equal(normalize_batch(mac, src), mac.transform(src))
    assert normalize_batch(None, src) is src
    np.testing.assert_array_equal(get_normalizer('none').transform(src), src)

def test_stain_normalize_transform(ref_src):
    ref, src = ref_src
    mac = MacenkoNormalizer().fit(ref); tfm = StainNormalize(mac); out = mac.transform(src)
    np.testing.assert_array_equal(np.asarray(tfm(PILImage.create(src[0]))), out[0])
    t = tfm(TensorImage(torch.from_numpy(src[1]).permute(2,0,1)))
    assert isinstance(t, TensorImage) and t.dtype==torch.uint8
    np.testing.assert_array_equal(t.permute(1,2,0).numpy(), out[1])
    tf = tfm(TensorImage(torch.from_numpy(src).permute(0,3,1,2).float()/255))
    assert tf.is_floating_point()
    np.testing.assert_allclose(tf.permute(0,2,3,1).numpy()*255, out, atol=1e-3)

# --- HED ---------------------------------------------------------------------------------------------------------
def test_torch_hed_matches_skimage():
    x = torch.rand(3,3,12,12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[0,:,:3] = 1.; x[1,:,:3] = 0.
    hed = torch_rgb2hed(x)
    np.testing.assert_allclose(hed.permute(0,2,3,1).numpy(), rgb2hed(x.permute(0,2,3,1).numpy()), atol=1e-4)
    np.testing.assert_allclose(torch_hed2rgb(hed).permute(0,2,3,1).numpy(), hed2rgb(hed.permute(0,2,3,1).numpy()), atol=1e-4)
    x32 = x.float()
    np.testing.assert_allclose(torch_rgb2hed(x32).permute(0,2,3,1).numpy(), rgb2hed(x.permute(0,2,3,1).numpy()), atol=1e-4)

@pytest.fixture
def xb(): return torch.from_numpy(fake_he(4, 32)).permute(0,3,1,2).float()/255

def test_hed_jitter_seeded(xb):
    torch.manual_seed(3); a = hed_jitter(xb, 0.1)
    torch.manual_seed(3); b = hed_jitter(xb, 0.1)
    assert torch.equal(a, b)
    c = hed_jitter(xb, 0.1, generator=torch.Generator().manual_seed(3))
    d = hed_jitter(xb, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c, d) and not torch.equal(c, hed_jitter(xb, 0.1, generator=torch.Generator().manual_seed(4)))

def test_hed_jitter_identity_and_change(xb):
    torch.testing.assert_close(hed_jitter(xb, 0.), xb, atol=1e-5, rtol=0)
    out = hed_jitter(xb, 0.05)
    assert (out-xb).abs().amax((1,2,3)).min() > 1e-3          # every image changed
    assert out.min() >= 0 and out.max() <= 1 and out.shape==xb.shape and out.dtype==xb.dtype
    torch.testing.assert_close(hed_jitter(xb, 0.3, p=0.), xb, atol=1e-5, rtol=0)

def test_hed_jitter_white_black_finite():
    wb = torch.stack([torch.ones(3,8,8), torch.zeros(3,8,8), torch.full((3,8,8), 1e-9)])
    out = hed_jitter(wb, 0.3)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1

def test_hedjitter_transform_train_only(xb):
    tfm = HEDJitter(0.1)
    assert tfm.split_idx==0 and 10 < tfm.order < 99
    t = TensorImage(xb)
    torch.manual_seed(0); a = tfm(t, split_idx=0)
    torch.manual_seed(0); b = hed_jitter(xb, 0.1)
    assert isinstance(a, TensorImage) and torch.equal(a, b)
    assert torch.equal(tfm(t, split_idx=1), t)
    assert torch.equal(HEDJitter(0.)(t, split_idx=0), t)
