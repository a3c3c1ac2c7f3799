from __future__ import annotations
import numpy as np, pandas as pd, pytest, torch, tifffile
from torch import nn
import histo_lib.infer as infer
from histo_lib.core import HistoError
from histo_lib.data import to_input, cache_dir
from histo_lib.models import build_model, save_artefact, load_artefact
from histo_lib.infer import (tta_views, predict_batch, ensemble, Predictor, predict, write_submission, check_submission,
                             validate_submission, SubmissionError, export_onnx, OnnxModel, onnx_available)

torch.set_num_threads(1)
CFG = dict(arch='reference', crop=32, mean=[0.70, 0.54, 0.69], std=[0.16, 0.20, 0.15], model_kwargs=dict(widths=(8, 16), dense=16))

def tiny_model(size=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2*(size-2)**2, 1)).eval()

class Recorder(nn.Module):
    "Logit = mean pixel; records the batch sizes it sees."
    def __init__(self): super().__init__(); self.w, self.seen = nn.Parameter(torch.ones(1)), []
    def forward(self, x): self.seen.append(len(x)); return x.mean((1, 2, 3))[:, None]*self.w

def sig(m, x): return m(x).double().sigmoid().view(-1)

needs_ort = pytest.mark.skipif(not onnx_available(), reason='onnxruntime not installed (histo_lib[onnx])')
T = dict(progress=False, backend='torch')  # exact comparisons with PyTorch computations

# --- TTA
def test_views_differ():
    x = torch.randn(1, 3, 6, 6)
    vs = tta_views(x, 'dihedral')
    assert len(vs) == 8
    assert all(not torch.equal(vs[i], vs[j]) for i in range(8) for j in range(i+1, 8))

def test_dihedral_equals_hand_average():
    m, xb = tiny_model(), torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        hand = [sig(m, torch.rot90(xb, k, (2, 3))) for k in range(4)] + \
               [sig(m, torch.rot90(xb.transpose(2, 3), k, (2, 3))) for k in range(4)]
    exp = torch.stack(hand).mean(0)
    assert torch.allclose(predict_batch(m, xb, 'dihedral'), exp, atol=1e-6)
    assert torch.allclose(predict_batch(m, xb, 'dihedral', stack_views=False), exp, atol=1e-6)
    assert not torch.allclose(predict_batch(m, xb, 'none'), exp, atol=1e-6)

def test_flip_uses_two_views():
    m, xb = tiny_model(), torch.randn(3, 3, 8, 8)
    assert len(tta_views(xb, 'flip')) == 2 and len(tta_views(xb, 'none')) == 1
    with torch.no_grad(): exp = (sig(m, xb) + sig(m, xb.flip(-1)))/2
    assert torch.allclose(predict_batch(m, xb, 'flip'), exp, atol=1e-6)

@pytest.mark.parametrize('tta,n', [('none', 1), ('flip', 2), ('dihedral', 8)])
def test_views_batched_in_one_forward(tta, n):
    m = Recorder(); predict_batch(m, torch.randn(4, 3, 8, 8), tta)
    assert m.seen == [4*n]
    m = Recorder(); predict_batch(m, torch.randn(4, 3, 8, 8), tta, stack_views=False)
    assert m.seen == [4]*n

@pytest.mark.parametrize('tta,bs,max_forward,sizes', [
    ('dihedral', 256, 128, [128]*16), ('dihedral', 40, 128, [128, 128, 64]), ('flip', 40, 50, [50, 30]),
    ('none', 300, 128, [128, 128, 44]), ('dihedral', 5, 3, [8]*5)])
def test_max_forward_bounds_each_pass(tta, bs, max_forward, sizes):
    m, xb = Recorder(), torch.randn(bs, 3, 4, 4)
    exp = predict_batch(m, xb, tta, max_forward=10**6); assert m.seen == [bs*len(tta_views(xb[:1], tta))]
    m.seen = []
    assert torch.allclose(predict_batch(m, xb, tta, max_forward=max_forward), exp, atol=1e-7)
    assert m.seen == sizes

def test_max_forward_separate_views():
    m = Recorder(); predict_batch(m, torch.randn(40, 3, 4, 4), 'flip', stack_views=False, max_forward=32)
    assert m.seen == [32, 32, 8, 8]
    with pytest.raises(HistoError, match='max_forward'): predict_batch(m, torch.randn(2, 3, 4, 4), max_forward=0)

def test_predictor_passes_max_forward(setup):
    d, px, _, m1 = setup
    rec = Recorder(); Predictor([(rec, CFG)], bs=9, max_forward=16, backend='torch')(px, progress=False)
    assert rec.seen == [16]*4 + [8]

def test_views_keep_channels_last():
    "to_input's channels-last layout survives stacking (PyTorch's CPU convs are ~1.4x faster on it)."
    fmts = []
    class M(nn.Module):
        def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(1))
        def forward(self, x): fmts.append(x.is_contiguous(memory_format=torch.channels_last)); return x.mean((1, 2, 3))[:, None]*self.w
    xb = to_input(np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8), 32, [0.5]*3, [0.25]*3)
    assert xb.is_contiguous(memory_format=torch.channels_last)
    predict_batch(M(), xb, 'dihedral'); predict_batch(M(), xb, 'flip', stack_views=False)
    assert fmts == [True]*3
    fmts.clear(); predict_batch(M(), xb.contiguous(), 'dihedral'); assert fmts == [False]

def test_unknown_tta():
    with pytest.raises(HistoError, match='Unknown TTA'): tta_views(torch.zeros(1, 3, 4, 4), 'd4')

def test_sigmoid_float64_keeps_confident_apart():
    m = Recorder()
    p = predict_batch(m, torch.tensor([18., 20.]).view(2, 1, 1, 1).expand(2, 3, 4, 4).contiguous(), 'none')
    assert p.dtype == torch.float64 and p[0] < p[1] < 1

# --- ensembling
def test_ensemble_mean():
    np.testing.assert_allclose(ensemble([[0.1, 0.4], [0.3, 1.0]]), [0.2, 0.7])

def test_ensemble_rank():
    a, b = [0.1, 0.4, 0.35, 0.8], [0.9, 0.95, 0.92, 0.91]
    np.testing.assert_allclose(ensemble([a, b], 'rank'), [0.25, 0.875, 0.625, 0.75])
    np.testing.assert_allclose(ensemble([[0.2, 0.4, 0.4], [0.3, 0.1, 0.2]], 'rank'), [(1/3+1)/2, (2.5/3+1/3)/2, (2.5/3+2/3)/2])

def test_ensemble_single_and_errors():
    np.testing.assert_allclose(ensemble([[0.3, 0.1]], 'rank'), [0.3, 0.1])
    with pytest.raises(HistoError, match='different lengths'): ensemble([[0.1], [0.1, 0.2]])
    with pytest.raises(HistoError, match='Unknown ensemble'): ensemble([[0.1]], 'max')

# --- prediction over data
@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('infer')
    px = np.random.default_rng(0).integers(0, 256, (9, 96, 96, 3), dtype=np.uint8)
    fns = [str(d/f'{i}.tif') for i in range(len(px))]
    for fn, p in zip(fns, px): tifffile.imwrite(fn, p)
    torch.manual_seed(1); m1 = build_model('reference', 32, **CFG['model_kwargs']).eval()
    save_artefact(m1, CFG, d/'run1')
    cfg2 = {**CFG, 'crop': 48, 'mean': [0.5]*3, 'std': [0.25]*3}
    torch.manual_seed(2); save_artefact(build_model('reference', 48, **cfg2['model_kwargs']), cfg2, d/'run2')
    return d, px, fns, m1

def test_artefact_round_trip(setup):
    d, px, _, m1 = setup
    with torch.no_grad():
        exp = [sig(m1, to_input(px, 32, CFG['mean'], CFG['std'])).numpy(),
               sig(m1, to_input(px, 32, CFG['mean'], CFG['std']).flip(-1)).numpy()]
    np.testing.assert_allclose(predict(d/'run1', px, tta='none', **T), exp[0], atol=1e-7)
    np.testing.assert_allclose(predict(d/'run1', px, tta='flip', **T), np.mean(exp, 0), atol=1e-7)
    np.testing.assert_allclose(predict(d/'run1'/'model.json', px, tta='none', **T), exp[0], atol=1e-7)

def test_stream_equals_memory(setup):
    d, px, fns, _ = setup
    mem = predict(d/'run1', px, bs=4, progress=False)
    np.testing.assert_array_equal(predict(d/'run1', fns, bs=4, progress=False, prefetch=False), mem)
    np.testing.assert_array_equal(predict(d/'run1', pd.Series(fns), bs=4, progress=True), mem)
    np.testing.assert_allclose(predict(d/'run1', pd.DataFrame(dict(src=fns)), bs=2, progress=False), mem, atol=1e-6)

def test_stream_decodes_bs_at_a_time(setup, monkeypatch):
    d, _, fns, _ = setup
    sizes, orig = [], infer.read_patches
    monkeypatch.setattr(infer, 'read_patches', lambda srcs: sizes.append(len(srcs)) or orig(srcs))
    predict(d/'run1', fns, bs=4, tta='none', progress=False)
    assert sizes == [4, 4, 1]

def test_ensemble_uses_each_models_preprocessing(setup):
    d, px, fns, _ = setup
    p1, p2 = (predict(d/r, px, tta='none', **T) for r in ('run1', 'run2'))
    np.testing.assert_allclose(predict([d/'run1', d/'run2'], fns, tta='none', **T), (p1+p2)/2, atol=1e-7)
    each = Predictor([d/'run1', d/'run2'], tta='none', backend='torch').predict_each(px, progress=False)
    assert each.shape == (2, len(px)) and not np.allclose(each[0], each[1])
    from scipy.stats import rankdata
    np.testing.assert_allclose(predict([d/'run1', d/'run2'], px, tta='none', ensemble='rank', **T),
                               (rankdata(p1)+rankdata(p2))/2/len(px))

# --- stain normalisation at inference
def test_stain_norm_applied_per_model(setup):
    from histo_lib.stain import ReinhardNormalizer
    d, px, _, m1 = setup
    norm = ReinhardNormalizer().fit(px[:3])
    cfg = {**CFG, 'stain_norm': norm.state()}
    raw, normed = predict([(m1, CFG)], px, **T), predict([(m1, cfg)], px, **T)
    assert np.abs(raw - normed).max() > 1e-4
    np.testing.assert_allclose(normed, predict([(m1, CFG)], norm.transform(px), **T), atol=1e-12)
    each = Predictor([(m1, cfg), (m1, CFG)], backend='torch').predict_each(px, progress=False)
    np.testing.assert_allclose(each, [normed, raw], atol=1e-12)

def test_stain_norm_bad_state(setup):
    _, px, _, m1 = setup
    with pytest.raises(HistoError, match="Unknown stain normaliser 'x'"): Predictor([(m1, {**CFG, 'stain_norm': {'name': 'x'}})])
    with pytest.raises(HistoError, match='state dict'): Predictor([(m1, {**CFG, 'stain_norm': 'reinhard'})])

# --- ONNX Runtime backend
@needs_ort
def test_onnx_matches_torch(setup):
    d, px, fns, m1 = setup
    fn = export_onnx(m1, 32)
    xb = to_input(px, 32, CFG['mean'], CFG['std'])
    with torch.no_grad(): np.testing.assert_allclose(OnnxModel(fn)(xb).numpy(), m1(xb).numpy(), atol=1e-4)
    for tta in ('none', 'dihedral'):
        np.testing.assert_allclose(predict([d/'run1', d/'run2'], fns, tta=tta, bs=4, progress=False, backend='onnx'),
                                   predict([d/'run1', d/'run2'], px, tta=tta, **T), atol=1e-4)

@needs_ort
def test_onnx_export_cached_by_weights(setup):
    _, _, _, m1 = setup
    fn = export_onnx(m1, 32)
    assert fn.parent == cache_dir()/'onnx' and fn.exists()  # conftest points $HISTO_CACHE at a temporary folder
    mtime = fn.stat().st_mtime_ns
    assert export_onnx(m1, 32) == fn and fn.stat().st_mtime_ns == mtime
    torch.manual_seed(5); other = build_model('reference', 32, **CFG['model_kwargs']).eval()
    assert export_onnx(other, 32) != fn and export_onnx(m1, 48) != fn

def test_backend_choice(setup, monkeypatch):
    d, _, _, m1 = setup
    assert isinstance(Predictor(d/'run1', backend='torch').models[0], nn.Module)
    if onnx_available(): assert isinstance(Predictor(d/'run1').models[0], OnnxModel)  # 'auto' on CPU
    with pytest.raises(HistoError, match="Unknown backend 'trt'"): Predictor(d/'run1', backend='trt')
    monkeypatch.setattr(infer, 'onnx_available', lambda: False)
    assert isinstance(Predictor(d/'run1').models[0], nn.Module)
    with pytest.raises(HistoError, match=r'histo_lib\[onnx\]'): Predictor(d/'run1', backend='onnx')

def test_auto_falls_back_when_export_fails(setup, monkeypatch):
    d, _, _, _ = setup
    if not onnx_available(): pytest.skip('onnxruntime not installed')
    def boom(model, crop): raise HistoError('Cannot export RefCNN to ONNX')
    monkeypatch.setattr(infer, 'export_onnx', boom)
    with pytest.warns(UserWarning, match='keeping PyTorch'): assert isinstance(Predictor(d/'run1').models[0], nn.Module)
    with pytest.raises(HistoError, match='Cannot export'): Predictor(d/'run1', backend='onnx')

def test_predict_errors(setup):
    d, px, fns, _ = setup
    with pytest.raises(HistoError, match='uint8'): predict(d/'run1', px.astype(np.float32), progress=False)
    with pytest.raises(HistoError, match='No model in'): predict(d/'nope', px, progress=False)
    with pytest.raises(HistoError, match='gone.tif'): predict(d/'run1', fns[:2] + [str(d/'gone.tif')], progress=False)

# --- writing
@pytest.fixture
def sample(tmp_path):
    fn = tmp_path/'sample_submission.csv'; fn.write_text('id,label\nc,0\na,0\nb,0\n'); return fn

def test_write_order_and_digits(tmp_path, sample):
    fn = write_submission(['a', 'b', 'c'], np.array([0.25, 0.9999991, 0.9999996]), tmp_path/'sub.csv', sample)
    assert fn.read_text() == 'id,label\nc,0.9999996\na,0.25\nb,0.9999991\n'
    assert check_submission(fn, sample) == []

def test_write_atomic(tmp_path, sample, monkeypatch):
    fn = write_submission(['a', 'b', 'c'], [0.1, 0.2, 0.3], tmp_path/'sub.csv', sample)
    before, calls, orig = fn.read_text(), [], infer._fmt
    def boom(p):
        calls.append(p)
        if len(calls) == 2: raise RuntimeError('disk full')
        return orig(p)
    monkeypatch.setattr(infer, '_fmt', boom)
    with pytest.raises(RuntimeError, match='disk full'): write_submission(['a', 'b', 'c'], [0.5]*3, fn, sample)
    assert len(calls) == 2 and fn.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')] == []

@pytest.mark.parametrize('ids,probs,msg', [
    (['a', 'b'], [0.1, 0.2], 'lack 1 ids of the sample submission: c'),
    (['a', 'b', 'c', 'z'], [0.1]*4, 'not in the sample submission: z'),
    (['a', 'a', 'c'], [0.1]*3, 'more than once'),
    (['a', 'b', 'c'], [np.nan, 0.5, 1.5], '2 predictions are NaN or outside'),
    (['a', 'b', 'c'], [0.5, 0.5], 'pair up'),
])
def test_write_refuses(tmp_path, sample, ids, probs, msg):
    with pytest.raises(HistoError, match=msg.replace('[', r'\[')): write_submission(ids, probs, tmp_path/'x.csv', sample)
    assert not (tmp_path/'x.csv').exists()

# --- checking: one test per defect
def check(tmp_path, txt, sample=None, binary=False):
    fn = tmp_path/'chk.csv'
    fn.write_bytes(txt) if binary else fn.write_text(txt)
    return check_submission(fn, sample)

def errors(res): return [p for p in res if not p.startswith('note:')]

def test_check_valid(tmp_path, sample): assert check(tmp_path, 'id,label\nc,0.1\na,0.2\nb,0.3\n', sample) == []

def test_check_missing_file(tmp_path): assert 'does not exist' in check_submission(tmp_path/'none.csv')[0]

def test_check_unreadable(tmp_path): assert 'cannot be read' in check(tmp_path, b'id,label\n\xff\xfe,0.5\n', binary=True)[0]

def test_check_header(tmp_path, sample):
    assert any("header is 'id,prob'" in p for p in check(tmp_path, 'id,prob\nc,0.1\na,0.2\nb,0.3\n', sample))

def test_check_no_rows(tmp_path): assert any('no rows' in p for p in check(tmp_path, 'id,label\n'))

def test_check_duplicates(tmp_path):
    assert any('1 ids that appear more than once: a' in p for p in check(tmp_path, 'id,label\na,0.1\na,0.2\nb,0.3\n'))

def test_check_empty_nan(tmp_path):
    assert any('2 empty or NaN labels, ids: a, b' in p for p in check(tmp_path, 'id,label\na,\nb,NaN\nc,0.3\n'))

def test_check_not_numeric(tmp_path):
    assert any('1 labels that are not numbers, ids: b' in p for p in check(tmp_path, 'id,label\na,0.1\nb,yes\nc,0.3\n'))

def test_check_out_of_range(tmp_path):
    assert any('2 labels outside [0,1], ids: a, c' in p for p in check(tmp_path, 'id,label\na,-0.1\nb,0.5\nc,1.01\n'))

def test_check_hard_labels(tmp_path):
    assert any('hard labels throw AUC away' in p for p in check(tmp_path, 'id,label\na,1\nb,0\nc,1.0\n'))
    assert check(tmp_path, 'id,label\na,1\nb,0\nc,0.5\n') == []

def test_check_missing_ids(tmp_path, sample):
    assert any('1 ids of the sample submission missing: b' in p for p in check(tmp_path, 'id,label\nc,0.1\na,0.2\n', sample))

def test_check_extra_ids(tmp_path, sample):
    res = check(tmp_path, 'id,label\nc,0.1\na,0.2\nb,0.3\nq,0.4\nr,0.5\n', sample)
    assert any('2 ids not in the sample submission: q, r' in p for p in res)

def test_check_row_count(tmp_path, sample):
    assert any('2 rows, but the sample submission has 3' in p for p in check(tmp_path, 'id,label\nc,0.1\na,0.2\n', sample))

def test_check_order_is_only_a_note(tmp_path, sample):
    res = check(tmp_path, 'id,label\na,0.1\nb,0.2\nc,0.3\n', sample)
    assert len(res) == 1 and res[0].startswith('note:') and 'row 2: a' in res[0]
    assert validate_submission(tmp_path/'chk.csv', sample) == res

def test_check_reports_every_problem(tmp_path, sample):
    res = errors(check(tmp_path, 'ID,label\nc,2\nc,x\nz,\nq,0.5\n', sample))
    assert len(res) == 8, res  # header, duplicate, empty, not numeric, out of range, missing, extra, row count

def test_validate_raises(tmp_path, sample):
    check(tmp_path, 'id,label\nc,1\na,0\nb,0\n', sample)
    with pytest.raises(SubmissionError, match='hard labels') as e: validate_submission(tmp_path/'chk.csv', sample)
    assert isinstance(e.value, HistoError)
