from __future__ import annotations
import json
import numpy as np, pandas as pd, pytest, torch
from fastai.callback.core import Callback
from histo_lib.core import set_seed
from histo_lib.data import patch_dls, to_input
from histo_lib.models import load_artefact
from histo_lib.synth import synth_patches, make_synth, make_synth_folder, make_synth_h5
from histo_lib.train import make_learner, fit, train, ResumeCheckpoint, artefact_cfg, _literal
from histo_lib.models import save_artefact

torch.set_num_threads(1)
TINY = dict(widths=(16, 32), dense=64)   # a small reference CNN: the tests check behaviour, not capacity

@pytest.fixture(scope='module')
def synth():
    x, y = synth_patches(800, seed=0)
    return x, y.astype(np.float32)

def learner(synth, run_dir, seed=0, arch='reference', crop=32, n_train=600, model_kwargs=TINY, **kw):
    x, y = synth
    set_seed(seed)
    dls = patch_dls(x, y, np.arange(n_train), np.arange(n_train, len(x)), crop=crop, bs=32, seed=seed)
    set_seed(seed)
    return make_learner(dls, arch, run_dir, model_kwargs=model_kwargs, **kw)

def weights(learn): return {k: v.clone() for k, v in learn.model.state_dict().items()}

class Killed(Exception): pass
class Crash(Callback):
    "Simulate a killed process after epoch `n`."
    order = ResumeCheckpoint.order+1
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch==self.n: raise Killed('simulated kill')

@pytest.mark.parametrize('arch,kwargs', [('reference', TINY), ('resnet18', {})])
def test_learns_synthetic(synth, tmp_path, arch, kwargs):
    learn = learner(synth, tmp_path, arch=arch, model_kwargs=kwargs)
    fit(learn, epochs=3, lr=3e-3, patience=None)
    hist = pd.read_csv(tmp_path/'history.csv')
    assert len(hist)==3
    assert hist.train_loss.iloc[-1] < hist.train_loss.iloc[0], hist
    assert hist.roc_auc.max() > 0.9, hist

def test_artefact_predicts_identically(synth, tmp_path):
    from histo_lib.infer import predict
    learn = learner(synth, tmp_path/'run'); fit(learn, epochs=1, lr=3e-3, patience=None)
    save_artefact(learn.model, artefact_cfg(learn), tmp_path/'run')
    model, cfg = load_artefact(tmp_path/'run')
    x = synth[0][600:664]
    xb = to_input(x, cfg['crop'], cfg['mean'], cfg['std'])
    learn.model.eval()
    with torch.no_grad(): want = torch.sigmoid(learn.model(xb)).view(-1).numpy()
    with torch.no_grad(): assert torch.equal(model(xb), learn.model(xb))
    np.testing.assert_allclose(predict([tmp_path/'run'], x, tta='none', backend='torch', progress=False), want, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('ema', [None, 0.99])
def test_resume_matches_uninterrupted(synth, tmp_path, ema):
    full = learner(synth, tmp_path/'full', seed=5, n_train=320); fit(full, epochs=2, lr=3e-3, patience=None, ema=ema)
    crashed = learner(synth, tmp_path/'crash', seed=5, n_train=320)
    with pytest.raises(Killed): fit(crashed, epochs=2, lr=3e-3, patience=None, ema=ema, cbs=Crash(0))
    assert len(pd.read_csv(tmp_path/'crash'/'history.csv'))==1
    resumed = learner(synth, tmp_path/'crash', seed=99, n_train=320)   # a new process: other seed, other init
    fit(resumed, epochs=2, lr=3e-3, patience=None, ema=ema, resume=True)
    hf, hr = pd.read_csv(tmp_path/'full'/'history.csv'), pd.read_csv(tmp_path/'crash'/'history.csv')
    assert list(hr.epoch)==[0, 1]
    np.testing.assert_allclose(hr.valid_loss.values, hf.valid_loss.values, atol=1e-5)
    wf, wr = weights(full), weights(resumed)
    assert all(torch.allclose(wf[k].float(), wr[k].float(), atol=1e-5) for k in wf)

def test_ema_changes_validated_weights(synth, tmp_path):
    plain = learner(synth, tmp_path/'a', seed=1, n_train=320); fit(plain, epochs=1, lr=3e-3, patience=None)
    avg = learner(synth, tmp_path/'b', seed=1, n_train=320); fit(avg, epochs=1, lr=3e-3, patience=None, ema=0.9)
    assert not np.allclose(pd.read_csv(tmp_path/'a'/'history.csv').valid_loss, pd.read_csv(tmp_path/'b'/'history.csv').valid_loss)

def test_seeded_runs_identical(synth, tmp_path):
    hs = []
    for run in ('s1', 's2'):
        learn = learner(synth, tmp_path/run, seed=3, n_train=320); fit(learn, epochs=1, lr=3e-3, patience=None)
        hs.append(pd.read_csv(tmp_path/run/'history.csv')[['train_loss', 'valid_loss', 'roc_auc']].values)
    np.testing.assert_array_equal(hs[0], hs[1])

@pytest.mark.parametrize('layout', ['kaggle', 'folder', 'h5'])
def test_train_every_layout(tmp_path, layout):
    d = tmp_path/'data'
    if layout=='kaggle': make_synth(d, n_train=96, n_test=8, seed=1)
    elif layout=='folder': make_synth_folder(d, n_per_class=32, seed=1)
    else: make_synth_h5(d, n=64, seed=1, splits=('train', 'valid'))
    train(d, tmp_path/'run', crop=32, bs=16, epochs=1, model_kwargs=dict(widths='(8,16)', dense='32'), cache=tmp_path/'cache')
    cfg = json.loads((tmp_path/'run'/'model.json').read_text())
    assert cfg['crop']==32 and cfg['model_kwargs']==dict(widths=[8, 16], dense=32)
    assert (tmp_path/'run'/'history.csv').exists() and 'stain_norm' not in cfg

@pytest.mark.parametrize('name', ['reinhard', 'macenko'])
def test_stain_norm_saved(tmp_path, name):
    from histo_lib.stain import StainNormalizer
    d = tmp_path/'data'; make_synth_folder(d, n_per_class=32, seed=2)
    train(d, tmp_path/'run', crop=32, bs=16, epochs=1, model_kwargs=dict(widths=(8, 16), dense=32), stain_norm=name, cache=tmp_path/'cache')
    cfg = json.loads((tmp_path/'run'/'model.json').read_text())
    assert cfg['stain_norm']['name']==name and cfg['train']['stain_norm']==name
    norm = StainNormalizer.from_state(cfg['stain_norm'])
    assert norm.transform(synth_patches(4, seed=9)[0]).dtype==np.uint8

def test_literal():
    assert _literal('(8,16)')==(8, 16) and _literal('0.2')==0.2 and _literal('relu')=='relu' and _literal(3)==3

def test_stain_aug_is_a_training_option(tmp_path):
    "train(stain_aug=S) puts HEDJitter(S) on the training batches only, and records it."
    from histo_lib.stain import HEDJitter
    d = make_synth(tmp_path/'k', n_train=64, n_test=8, seed=0)
    learn = train(d, tmp_path/'run', crop=32, bs=16, epochs=1, model_kwargs=dict(widths=(8, 16), dense=32), stain_aug=0.05, cache=tmp_path/'cache')
    jit = [t for t in learn.dls.train.after_batch.fs if isinstance(t, HEDJitter)]
    assert len(jit)==1 and jit[0].strength==0.05
    assert not any(isinstance(t, HEDJitter) for t in learn.dls.valid.after_batch.fs)
    assert json.loads((tmp_path/'run'/'model.json').read_text())['train']['stain_aug']==0.05
