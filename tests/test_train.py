"Integration: the fastai idioms on the DataBlock path, end to end on a synthetic set (issue 11's check), and `train` from folders in each layout."
from __future__ import annotations
import io, contextlib, json
import matplotlib; matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest, torch
from fastai.data.block import DataBlock
from fastai.interpret import ClassificationInterpretation
from histo_lib.data import histo_dls, histo_dblock, PatchStore, histo_splitter
from histo_lib.train import histo_learner, train, load_run
from conftest import histo

torch.set_num_threads(1)

def test_fastai_idioms(kaggle_data, tmp_path):
    syn = kaggle_data
    dls = histo_dls(syn, crop=32, bs=32)
    items = pd.concat([dls.items['train'], dls.items['valid']], ignore_index=True)
    assert isinstance(histo_dblock(32, dls.stats, store=PatchStore(), items=items, splitter=histo_splitter(items, 80)), DataBlock)
    dls.show_batch(max_n=4, show=False)
    files = sorted((syn/'test').iterdir())[:37]
    tdl = dls.test_dl(files)
    assert len(tdl.dataset)==37 and [str(f) for f in files]==list(tdl.items)
    learn = histo_learner(dls, 'reference', model_kwargs=dict(widths=(16,32), dense=64), path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    p, _ = learn.get_preds(dl=tdl)
    pt, _ = learn.tta(dl=tdl)
    assert p.shape==pt.shape==(37,1) and not torch.allclose(p, pt)
    learn.show_results(max_n=4)
    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix(); interp.plot_top_losses(4)
    assert interp.confusion_matrix().sum()==len(dls.items['valid'])
    with contextlib.redirect_stdout(io.StringIO()): assert 'Total params' in learn.summary()
    rl = histo_learner(dls, 'resnet18', path=tmp_path); rl.freeze()
    n_all = sum(q.numel() for q in rl.model.parameters())
    assert sum(q.numel() for q in rl.model.parameters() if q.requires_grad) < n_all/2

def test_load_run_equals_predict(work, run_dir, kaggle_data, tmp_path):
    "fastai's `load_run` + `get_preds` on a test_dl gives `histo predict`'s probabilities, id by id."
    histo('predict', run_dir, kaggle_data, '--out', tmp_path/'sub.csv', '--tta', 'none', cwd=work)
    want = pd.read_csv(tmp_path/'sub.csv', dtype={'id': str}).set_index('id')['label']
    learn = load_run(run_dir)
    items = pd.read_csv(kaggle_data/'sample_submission.csv', dtype={'id': str}).sample(frac=1, random_state=0)  # another order than predict's
    p, _ = learn.get_preds(dl=learn.dls.test_dl([kaggle_data/'test'/f'{i}.tif' for i in items.id]))
    assert want.std() > 1e-3
    np.testing.assert_allclose(p.view(-1).numpy(), want.loc[items.id].values, atol=1e-4)

@pytest.mark.parametrize('layout', ['folder', 'h5'])
def test_train_other_layouts(layout, folder_data, h5_data, tmp_path):
    data = dict(folder=folder_data, h5=h5_data)[layout]
    learn = train(data, tmp_path/'run', epochs=1, crop=32, bs=32, model_widths='(8,16)', model_dense=32)
    cfg = json.loads((tmp_path/'run'/'model.json').read_text())
    assert (cfg['train']['n_train'], cfg['train']['n_valid']) == ((40, 40) if layout=='folder' else (80, 80))  # each layout's own valid split
    assert len(learn.dls.items['valid'])==cfg['train']['n_valid']

def test_stain_options_reach_the_artefact(kaggle_data, tmp_path):
    learn = train(kaggle_data, tmp_path/'run', epochs=1, crop=32, stain_norm='reinhard', stain_aug=0.05, model_widths='(8,16)', model_dense=32)
    cfg = json.loads((tmp_path/'run'/'model.json').read_text())
    assert cfg['stain_norm']['name']=='reinhard' and cfg['train']['stain_aug']==0.05
    assert any(type(t).__name__=='HEDJitter' for t in learn.dls.train.after_batch.fs)

def test_weights_normalize_alike_in_notebook_and_cli(kaggle_data, tmp_path):
    "Issue 24: `histo_learner(dls, arch, weights=FILE)` normalizes as `histo train --weights FILE` does (the checkpoint's pretrained_cfg), and model.json records it alike."
    import timm
    from histo_lib.cache import read_patches
    from histo_lib.train import save_run
    fn = tmp_path/'scratch.pth'
    torch.manual_seed(0); torch.save(timm.create_model('resnet18', num_classes=1000).state_dict(), fn)  # a timm model from scratch: nothing downloaded
    histo('train', kaggle_data, '--out', tmp_path/'cli', '--arch', 'resnet18', '--weights', fn, '--epochs', 1, '--crop', 32, cwd=tmp_path)
    dls = histo_dls(kaggle_data, crop=32, bs=32)
    data_stats = dls.stats
    learn = histo_learner(dls, 'resnet18', weights=fn, path=tmp_path/'nb')
    save_run(learn, tmp_path/'nb')
    cli, nb = (json.loads((tmp_path/d/'model.json').read_text()) for d in ('cli', 'nb'))
    assert (nb['mean'], nb['std']) == (cli['mean'], cli['std']) == (list(timm.data.IMAGENET_DEFAULT_MEAN), list(timm.data.IMAGENET_DEFAULT_STD))
    assert data_stats[0] != nb['mean']   # the data's own statistics differ: the check can fail
    xb, _ = dls.valid.one_batch()        # and the batches are normalized with what is recorded
    raw = torch.from_numpy(read_patches(list(dls.valid.items[:len(xb)]))[:, 32:64, 32:64]).permute(0,3,1,2).float()/255
    want = (raw - torch.tensor(nb['mean']).view(1,3,1,1)) / torch.tensor(nb['std']).view(1,3,1,1)
    torch.testing.assert_close(xb.cpu().as_subclass(torch.Tensor), want, atol=1e-5, rtol=0)

def test_save_run_round_trip(kaggle_data, tmp_path):
    "Issue 24: a Learner built in a notebook, written by `learn.save_run(DIR)`, predicts through `histo_lib.infer.predict(DIR, ...)` as `learn.get_preds`/`learn.tta` do."
    from histo_lib.infer import predict
    dls = histo_dls(kaggle_data, crop=48, bs=32)
    learn = histo_learner(dls, 'reference', model_kwargs=dict(widths=(8, 16), dense=32))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    learn.save_run(tmp_path/'run')
    files = [str(f) for f in sorted((kaggle_data/'test').iterdir())[:24]]
    tdl = learn.dls.test_dl(files)
    p, _ = learn.get_preds(dl=tdl)
    pt, _ = learn.tta(dl=tdl)
    np.testing.assert_allclose(predict(tmp_path/'run', files, tta='none', progress=False, backend='torch'), p.view(-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(predict(tmp_path/'run', files, tta='dihedral', progress=False, backend='torch'), pt.view(-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(load_run(tmp_path/'run').get_preds(dl=load_run(tmp_path/'run').dls.test_dl(files))[0].view(-1).numpy(), p.view(-1).numpy(), atol=1e-5)

# --- issue 34: tests that can fail ----------------------------------------------------------------------------------
from fastai.callback.core import Callback
from histo_lib.data import array_dls
from histo_lib.callbacks import EMA

def _tiny_learner(n=64, bs=16, tmp=None):
    g = np.random.default_rng(0)
    xs = g.integers(0, 255, (n,96,96,3), dtype=np.uint8); ys = np.arange(n)%2
    dls = array_dls(xs, ys, np.arange(n-16, n), crop=32, bs=bs, device='cpu')
    return histo_learner(dls, 'reference', model_kwargs=dict(widths=(4,8), dense=8), path=tmp)

class _Weights(Callback):
    "The live weights after every optimiser step (before EMA swaps anything in)."
    order = 50
    def before_fit(self): self.seen = [[v.detach().clone() for v in self.learn.model.state_dict().values()]]
    def after_step(self): self.seen.append([v.detach().clone() for v in self.learn.model.state_dict().values()])

def test_ema_is_the_hand_computed_average(tmp_path):
    "After fit the model holds EMA's average, equal to one computed by hand from the live weights of each step: a decay of 1.0 (no update) or no swap fails."
    learn, rec, decay = _tiny_learner(tmp=tmp_path), _Weights(), 0.9
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=[rec, EMA(decay)])
    avg = [v.clone() for v in rec.seen[0]]
    for t, live in enumerate(rec.seen[1:], 1):
        d = min(decay, (1+t)/(10+t))
        avg = [a + (1-d)*(w-a) if a.is_floating_point() else w.clone() for a,w in zip(avg, live)]
    assert len(rec.seen)-1 == 2*3                                                            # 48 training items, bs 16: 3 steps an epoch
    got = list(learn.model.state_dict().values())
    fl = [i for i,a in enumerate(avg) if a.is_floating_point()]
    assert max((got[i]-rec.seen[-1][i]).abs().max() for i in fl) > 1e-4                    # the average differs from the last weights ...
    for i in fl: torch.testing.assert_close(got[i], avg[i], rtol=1e-5, atol=1e-6)         # ... and it is what the model holds

def test_fine_tune_and_lr_find(tmp_path):
    "fastai's `fine_tune` (a frozen epoch, then all) and `lr_find` on a tiny model: a few batches each."
    learn = _tiny_learner(tmp=tmp_path)
    head = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_bar(), learn.no_logging(): sug = learn.lr_find(num_it=6, show_plot=False)
    assert np.isfinite(sug.valley) and len(learn.recorder.lrs)>=2
    assert all(torch.equal(a, b) for a,b in zip(head, learn.model.parameters()))             # lr_find puts the weights back
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-3, freeze_epochs=1)
    assert len(learn.recorder.values)==1 and learn.opt.frozen_idx==0                          # the unfrozen epoch's log; unfrozen at the end

def test_packaged_defaults_are_the_signatures():
    "The packaged settings.ini's [DEFAULT] says what the run parameters' signatures say, key by key."
    import configparser
    from histo_lib.settings import packaged_settings, run_params, check_params
    cp = configparser.ConfigParser(); cp.read(packaged_settings)
    rp, d = run_params(), dict(cp['DEFAULT'])
    assert set(d) - set(rp) == {'tta', 'infer_bs'}                                            # prediction's keys, not run parameters
    got = check_params({k:v for k,v in d.items() if k in rp})
    assert {k: got[k] for k in d if k in rp} == {k: rp[k]['default'] for k in d if k in rp}
