"Integration: the fastai idioms on the DataBlock path, end to end on a synthetic set (issue 11's check), and `train` from folders in each layout."
from __future__ import annotations
import subprocess, io, contextlib
import matplotlib; matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest, torch
from fastai.data.block import DataBlock
from fastai.interpret import ClassificationInterpretation
from histo_lib.synth import make_synth, make_synth_folder, make_synth_h5
from histo_lib.data import histo_dls, histo_dblock, PatchStore, histo_splitter, histo_tfms
from histo_lib.train import histo_learner, train, load_run
from conftest import histo_cmd

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp('syn')/'data', n_train=400, n_test=60, seed=0)

def test_fastai_idioms(syn, tmp_path):
    dls = histo_dls(syn, crop=48, bs=32)
    items = pd.concat([dls.items['train'], dls.items['valid']], ignore_index=True)
    assert isinstance(histo_dblock(PatchStore(), items, histo_splitter(items, 80), histo_tfms(dls.stats, 48)), DataBlock)
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

def test_load_run_equals_predict(syn, tmp_path):
    run, sub = tmp_path/'run', tmp_path/'sub.csv'
    subprocess.run([*histo_cmd(), 'train', str(syn), '--out', str(run), '--epochs', '1', '--crop', '48'], check=True, capture_output=True)
    subprocess.run([*histo_cmd(), 'predict', str(run), str(syn), '--out', str(sub), '--tta', 'none'], check=True, capture_output=True)
    want = pd.read_csv(sub, dtype={'id': str}).set_index('id')['label']
    learn = load_run(run)
    items = pd.read_csv(syn/'sample_submission.csv', dtype={'id': str})
    p, _ = learn.get_preds(dl=learn.dls.test_dl([syn/'test'/f'{i}.tif' for i in items.id]))
    np.testing.assert_allclose(p.view(-1).numpy(), want.loc[items.id].values, atol=1e-4)

@pytest.mark.parametrize('make', [make_synth_folder, make_synth_h5])
def test_train_other_layouts(make, tmp_path):
    data = make(tmp_path/'d', 150, seed=1) if make is make_synth_folder else make(tmp_path/'d', n=300, seed=1)
    learn = train(data, tmp_path/'run', epochs=1, crop=32, bs=32, model_widths='(8,16)', model_dense=32)
    assert (tmp_path/'run'/'model.json').exists() and len(learn.dls.items['valid'])>0

def test_stain_options_reach_the_artefact(syn, tmp_path):
    learn = train(syn, tmp_path/'run', epochs=1, crop=32, stain_norm='reinhard', stain_aug=0.05, model_widths='(8,16)', model_dense=32)
    cfg = __import__('json').loads((tmp_path/'run'/'model.json').read_text())
    assert cfg['stain_norm']['name']=='reinhard' and cfg['train']['stain_aug']==0.05
    assert any(type(t).__name__=='HEDJitter' for t in learn.dls.train.after_batch.fs)
