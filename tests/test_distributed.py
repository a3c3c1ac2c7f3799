"""Data-parallel training and prediction (`--nproc`): two gloo CPU processes on small synthetic data, through the command line.
The module's run is trained as a user runs it (a subprocess, whose output is read whole); the other commands run their parent in
this process (`capfd` reads what the workers, always new processes, print)."""
import json, shutil
import numpy as np, pandas as pd, pytest
from conftest import histo, tiny_settings

pytest.importorskip('accelerate')

@pytest.fixture(scope='module')
def ddp(tmp_path_factory, h5_data):
    "The session's PCam-HDF5 set (train, valid and test splits of 80) and a run trained by 2 processes."
    d = tmp_path_factory.mktemp('ddp')
    tiny_settings(d)
    (d/'syn').symlink_to(h5_data, target_is_directory=True)
    r = histo('train', d/'syn', '--out', d/'run', '--epochs', 1, '--crop', 32, '--nproc', 2, '--patience', 0, cwd=d, proc=True)
    return d, r

def test_two_processes_write_one_artefact(ddp):
    d, r = ddp
    cfg = json.loads((d/'run'/'model.json').read_text())
    assert cfg['train']['nproc']==2 and cfg['n_params']>0 and (d/'run'/'model.safetensors').exists()
    assert len(pd.read_csv(d/'run'/'history.csv'))==1                     # one writer: one row per epoch, one header
    assert r.stdout.count('Saved ')==1 and r.stdout.count('train_loss')==1   # rank 0 alone reports (one table header)
    assert not list(d.glob('run/*.tmp*')) and not list((d/'run').glob('.*'))

def test_valid_auc_is_the_whole_valid_set(ddp):
    "The AUC gathered from both processes during the fit equals the evaluation of the saved model on the whole valid split."
    d, _ = ddp
    cfg = json.loads((d/'run'/'model.json').read_text())
    histo('evaluate', d/'run', d/'syn', '--split', 'valid', '--tta', 'none', '--out', d/'rep', cwd=d)
    rep = json.loads((d/'rep'/'report.json').read_text())
    assert rep['n']==80
    assert abs(cfg['valid_scores']['roc_auc'] - rep['roc_auc']) < 1e-3, (cfg['valid_scores'], rep['roc_auc'])
    hist = pd.read_csv(d/'run'/'history.csv')
    assert abs(hist.roc_auc.iloc[-1] - rep['roc_auc']) < 1e-6                # computed during the fit, by DistributedDL's gather

def test_resume_with_two_processes(ddp, tmp_path, capfd):
    d, _ = ddp
    shutil.copytree(d/'run', tmp_path/'run')
    histo('train', d/'syn', '--out', tmp_path/'run', '--epochs', 2, '--crop', 32, '--nproc', 2, '--patience', 0, '--resume', cwd=d)
    assert 'Resuming at epoch 1 of 2' in capfd.readouterr().out                # rank 0 says so
    assert list(pd.read_csv(tmp_path/'run'/'history.csv').epoch)==[0, 1]

def test_two_process_prediction_equals_one(ddp):
    d, _ = ddp
    histo('predict', d/'run', d/'syn', '--out', d/'p1.csv', '--tta', 'flip', cwd=d)
    histo('predict', d/'run', d/'syn', '--out', d/'p2.csv', '--tta', 'flip', '--nproc', 2, cwd=d)  # the parent in this process; its 2 workers are new processes
    p1, p2 = pd.read_csv(d/'p1.csv'), pd.read_csv(d/'p2.csv')
    assert list(p1.id)==list(p2.id) and len(p1)==80
    np.testing.assert_allclose(p2.label, p1.label, atol=1e-6)

def test_a_failing_worker_names_its_file(tmp_path):
    "A corrupt image in the second process's block of the decode stops both processes, with that file's name."
    tiny_settings(tmp_path)
    from histo_lib.synth import make_synth
    make_synth(tmp_path/'syn', n_train=120, n_test=8, seed=5)
    ids = pd.read_csv(tmp_path/'syn'/'train_labels.csv', dtype=str).id
    bad = tmp_path/'syn'/'train'/f'{ids.iloc[-1]}.tif'
    bad.write_bytes(b'not a tif')
    r = histo('train', tmp_path/'syn', '--out', tmp_path/'run', '--epochs', 1, '--crop', 32, '--nproc', 2, cwd=tmp_path, ok=False)
    assert r.returncode==2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('histo train: error: worker 1 of 2:') and bad.name in last, r.stderr[-2000:]
    assert not (tmp_path/'run'/'model.json').exists() and not (tmp_path/'run'/'model.safetensors').exists()
