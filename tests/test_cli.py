"The `histo` command line, end to end through subprocesses, as a user (or another tool) runs it."
import json, subprocess, os
from pathlib import Path
import pandas as pd, pytest
from conftest import histo_cmd

def histo(*args, cwd=None, ok=True, env_umask=None):
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '2')}
    pre = (lambda: os.umask(env_umask)) if env_umask is not None else None
    r = subprocess.run(histo_cmd()+[str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, preexec_fn=pre)
    if ok: assert r.returncode==0, f"histo {' '.join(map(str,args))} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "synth -> train once for the module."
    d = tmp_path_factory.mktemp('cli')
    (d/'settings.ini').write_text("[DEFAULT]\ncrop = 32\nepochs = 1\nbs = 32\ntta = flip\ninfer_bs = 64\n[tiny]\nepochs = 2\n")
    histo('synth', d/'data', '--n-train', 240, '--n-test', 48, '--seed', 3, cwd=d)
    r = histo('train', 'data', '--out', 'run', cwd=d)  # relative folders, as typed: checkpoints must not land in run/checkpoints/run/checkpoints
    return d, r

def test_synth_layout(run):
    d, _ = run
    assert {p.name for p in (d/'data').iterdir()} >= {'train', 'test', 'train_labels.csv', 'sample_submission.csv', 'test_labels.csv'}
    assert len(pd.read_csv(d/'data'/'train_labels.csv'))==240

def test_train_artefact_uses_settings(run):
    d, r = run
    cfg = json.loads((d/'run'/'model.json').read_text())
    assert cfg['crop']==32 and cfg['arch']=='reference' and cfg['train']['epochs']==1   # from ./settings.ini
    assert (d/'run'/'model.safetensors').exists() and len(pd.read_csv(d/'run'/'history.csv'))==1
    assert {p.name for p in (d/'run'/'checkpoints').iterdir()} >= {'best.pth', 'last.json', 'last.0.pth'}
    assert 'Saved' in r.stdout

def test_flags_override_settings(run, tmp_path):
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'r2', '--crop', 48, '--recipe', 'tiny', '--patience', 0, cwd=d)
    cfg = json.loads((tmp_path/'r2'/'model.json').read_text())
    assert cfg['crop']==48 and cfg['train']['epochs']==2                                # flag beats settings, recipe beats DEFAULT

def test_speed_and_shift_flags_reach_training(run, tmp_path):
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'r3', '--crop', 64, '--shift', 8, '--bf16', '--channels-last', '--mixup', 0.4, cwd=d)
    tr = json.loads((tmp_path/'r3'/'model.json').read_text())['train']
    assert (tr['shift'], tr['bf16'], tr['channels_last'], tr['crop'], tr['mixup'])==(8, True, True, 64, 0.4)
    r = histo('train', d/'data', '--out', tmp_path/'r4', '--crop', 64, '--shift', 20, cwd=d, ok=False)
    assert r.returncode!=0 and 'can move by 0..16 px' in r.stderr                          # a shift that leaves the patch

def test_refit_trains_on_every_label(run, tmp_path):
    "--refit: the validation items train too; epochs cannot then be chosen by them, so keep=best is refused in one line."
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'all', '--refit', '--keep', 'last', '--patience', 0, cwd=d)
    tr = json.loads((tmp_path/'all'/'model.json').read_text())['train']
    assert (tr['refit'], tr['n_train'], tr['n_valid'])==(True, 240, 48)                   # 192 + 48 validation items train
    r = histo('evaluate', tmp_path/'all', d/'data', '--split', 'train', '--out', tmp_path/'rep', '--tta', 'none', cwd=d)
    assert json.loads((tmp_path/'rep'/'report.json').read_text())['extra']['trained_on']==48  # evaluate says which items trained it
    assert 'Note: 48 of these 240 items are validation items' in r.stdout and 'measures fit, not generalisation' in r.stdout
    r = histo('train', d/'data', '--out', tmp_path/'best', '--refit', cwd=d, ok=False)
    assert r.returncode==2 and 'set keep = last and patience = 0' in r.stderr and r.stderr.strip().count('\n')==0
    assert not (tmp_path/'best').exists()

def test_predict_and_check(run):
    d, _ = run
    r = histo('predict', d/'run', d/'data', '--out', d/'sub.csv', cwd=d)
    sub, sample = pd.read_csv(d/'sub.csv'), pd.read_csv(d/'data'/'sample_submission.csv')
    assert list(sub.columns)==['id','label'] and list(sub.id)==list(sample.id)
    assert sub.label.between(0,1).all() and sub.label.nunique()>2                       # probabilities, not 0/1
    r = histo('check-submission', d/'sub.csv', '--sample-submission', d/'data'/'sample_submission.csv')
    assert 'valid submission' in r.stdout

def test_ensemble_predict(run):
    d, _ = run
    histo('predict', d/'run', d/'run', d/'data', '--out', d/'ens.csv', '--ensemble', 'rank', '--tta', 'none', cwd=d)
    assert len(pd.read_csv(d/'ens.csv'))==48

def test_check_submission_names_problems(run, tmp_path):
    d, _ = run
    sample = pd.read_csv(d/'data'/'sample_submission.csv')
    bad = sample.assign(label=1).iloc[1:]; bad.to_csv(tmp_path/'bad.csv', index=False)
    r = histo('check-submission', tmp_path/'bad.csv', '--sample-submission', d/'data'/'sample_submission.csv', ok=False)
    assert r.returncode==2 and sample.id[0] in r.stdout and 'Traceback' not in r.stderr

def test_evaluate_report(run):
    d, _ = run
    r = histo('evaluate', d/'run', d/'data', '--out', d/'rep', '--tta', 'none', '--sample', 30, cwd=d)
    rep = json.loads((d/'rep'/'report.json').read_text())
    assert rep['n']==30 and rep['extra']['split']=='test' and rep['extra']['sample']==30 and rep['extra']['trained_on']==0
    assert 0<=rep['roc_auc']<=1 and {'roc.png','confusion.png','report.md','errors.png'} <= {p.name for p in (d/'rep').iterdir()}
    assert 'ROC AUC' in r.stdout

def test_info(run):
    d, _ = run
    r = histo('info', d/'data', '--json')
    s = json.loads(r.stdout)
    assert s['layout']=='kaggle' and s['splits']['train']['n']==240 and s['splits']['test']['n']==48

def test_explain_png(run):
    d, _ = run
    histo('explain', d/'run', d/'data', '--out', d/'cam.png', '--n', 4, '--split', 'train', cwd=d)
    assert (d/'cam.png').read_bytes()[:8]==b'\x89PNG\r\n\x1a\n'

@pytest.mark.parametrize('cmd', ['synth','info','train','predict','evaluate','check-submission','explain'])
def test_help(cmd):
    r = histo(cmd, '--help')
    assert 'usage: histo '+cmd in r.stdout

def test_user_error_is_one_line(tmp_path):
    r = histo('train', tmp_path/'missing', '--out', tmp_path/'o', ok=False)
    assert r.returncode==2 and r.stderr.strip().count('\n')==0 and 'does not exist' in r.stderr and 'Traceback' not in r.stderr

def test_stain_norm_travels_with_the_model(run, tmp_path):
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'sn', '--stain-norm', 'reinhard', '--patience', 0, cwd=d)
    cfg = json.loads((tmp_path/'sn'/'model.json').read_text())
    assert cfg['stain_norm']['name']=='reinhard' and len(cfg['stain_norm']['means'])==3
    histo('predict', tmp_path/'sn', d/'data', '--out', tmp_path/'sn.csv', '--tta', 'none', '--backend', 'torch', cwd=d)
    assert pd.read_csv(tmp_path/'sn.csv').label.between(0,1).all()

def test_one_parameter_source_from_any_folder(run, tmp_path):
    "Issue 12's check, from a folder outside the checkout: a packaged recipe works, bad names and values fail first."
    d, _ = run
    r = histo('train', d/'data', '--out', tmp_path/'cb', '--recipe', 'cpu-best', '--epochs', 1, cwd=tmp_path, env_umask=0o022)
    cfg = json.loads((tmp_path/'cb'/'model.json').read_text())
    assert (cfg['arch'], cfg['crop'], cfg['train']['epochs'], cfg['train']['ema'], cfg['train']['keep'], cfg['model_kwargs']['widths']) == \
           ('reference', 96, 1, 0.998, 'last', [16, 32, 64])
    assert [oct((tmp_path/'cb'/f).stat().st_mode & 0o777) for f in ('model.json', 'model.safetensors', 'curves.png')] == ['0o644']*3
    r = histo('train', d/'data', '--out', tmp_path/'big', '--crop', 128, cwd=tmp_path, ok=False)
    assert r.returncode==2 and 'crop = 128 is out of range' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'big').exists()
    (tmp_path/'settings.ini').write_text("[DEFAULT]\nepoch = 3\n")
    r = histo('train', d/'data', '--out', tmp_path/'typo', cwd=tmp_path, ok=False)
    assert r.returncode==2 and "unknown setting 'epoch'. Did you mean 'epochs'?" in r.stderr and not (tmp_path/'typo').exists()

def test_transfer_learning_from_a_local_timm_checkpoint(run, tmp_path):
    "--weights: timm's loader reads a local ImageNet-style checkpoint (made here: nothing is downloaded), normalised with its stats."
    import timm, torch
    d, _ = run
    torch.save({'state_dict': timm.create_model('resnet18', num_classes=1000).state_dict()}, tmp_path/'in1k.pth')
    histo('train', d/'data', '--out', tmp_path/'tl', '--arch', 'resnet18', '--weights', tmp_path/'in1k.pth', '--freeze-epochs', 1,
          '--epochs', 1, '--crop', 32, cwd=d)
    cfg = json.loads((tmp_path/'tl'/'model.json').read_text())
    assert cfg['mean']==[0.485, 0.456, 0.406] and cfg['train']['lr_mult']==10.0 and cfg['train']['freeze_epochs']==1
    r = histo('train', d/'data', '--out', tmp_path/'tl2', '--arch', 'efficientnet_b0', '--weights', tmp_path/'in1k.pth', cwd=d, ok=False)
    assert r.returncode==2 and 'in1k.pth do not fit efficientnet_b0' in r.stderr and 'Traceback' not in r.stderr
    r = histo('train', d/'data', '--out', tmp_path/'tl3', '--weights', tmp_path/'none.pth', cwd=d, ok=False)
    assert r.returncode==2 and 'none.pth not found' in r.stderr

def test_p4m_arch_onnx_tta_and_gradcam(run, tmp_path):
    "Issue 16: `--arch p4m` trains, exports to ONNX (the CPU default backend) with the torch model's outputs, is invariant to the 8 views, and Grad-CAM explains it."
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'p4m', '--arch', 'p4m', '--crop', 32, '--patience', 0, cwd=d)
    assert json.loads((tmp_path/'p4m'/'model.json').read_text())['arch']=='p4m'
    probs = {}
    for backend, tta in (('torch', 'none'), ('torch', 'dihedral'), ('onnx', 'dihedral')):
        out = tmp_path/f'{backend}_{tta}.csv'
        histo('predict', tmp_path/'p4m', d/'data', '--out', out, '--backend', backend, '--tta', tta, cwd=d)
        probs[backend, tta] = pd.read_csv(out).label.values
    assert probs['torch', 'none'].std() > 1e-3                                               # not a constant model
    assert abs(probs['torch', 'dihedral'] - probs['torch', 'none']).max() < 1e-4             # one view is all 8 views
    assert abs(probs['onnx', 'dihedral'] - probs['torch', 'dihedral']).max() < 1e-4          # ONNX runs the same model
    histo('explain', tmp_path/'p4m', d/'data', '--out', tmp_path/'cam.png', '--n', 4, '--split', 'train', cwd=d)
    assert (tmp_path/'cam.png').read_bytes()[:8]==b'\x89PNG\r\n\x1a\n'

def test_members_one_artefact_onnx_and_gradcam(run, tmp_path):
    "Issue 16: `model_members = 2` trains a deep ensemble as one model: one artefact, ONNX with the torch outputs, Grad-CAM."
    d, _ = run
    (tmp_path/'ens.ini').write_text("[ens]\ncrop = 32\nepochs = 1\nbs = 32\nmodel_members = 2\nmodel_widths = (8, 16)\nmodel_dense = 32\n")
    histo('train', d/'data', '--out', tmp_path/'ens', '--settings', tmp_path/'ens.ini', '--recipe', 'ens', cwd=d)
    cfg = json.loads((tmp_path/'ens'/'model.json').read_text())
    assert cfg['model_kwargs']=={'members': 2, 'widths': [8, 16], 'dense': 32}, cfg['model_kwargs']
    from safetensors import safe_open
    with safe_open(tmp_path/'ens'/'model.safetensors', 'pt') as f: keys = list(f.keys())
    assert {k.split('.')[1] for k in keys if k.startswith('members.')}=={'0', '1'} and all(k.startswith('members.') for k in keys)
    probs = {}
    for backend in ('torch', 'onnx'):
        histo('predict', tmp_path/'ens', d/'data', '--out', tmp_path/f'{backend}.csv', '--backend', backend, '--tta', 'flip', cwd=d)
        probs[backend] = pd.read_csv(tmp_path/f'{backend}.csv').label.values
    assert probs['torch'].std() > 1e-3 and abs(probs['onnx'] - probs['torch']).max() < 1e-4
    histo('explain', tmp_path/'ens', d/'data', '--out', tmp_path/'cam.png', '--n', 4, '--split', 'train', cwd=d)
    assert (tmp_path/'cam.png').read_bytes()[:8]==b'\x89PNG\r\n\x1a\n'

# --- issue 15: every bad input and fault gets one clear line and loses nothing -----------------------------------
def _one_line(r, *wanted, code=2):
    "A failed command: status `code`, no traceback, one line on stderr holding every string of `wanted`."
    err = r.stderr.strip()
    assert r.returncode==code and 'Traceback' not in r.stderr and err.count('\n')==0, f"{r.returncode}\n{r.stderr[-3000:]}"
    for w in wanted: assert str(w) in err, f"{w!r} not in {err!r}"
    return err

def _copy(src, dst):
    import shutil; shutil.copytree(src, dst); return dst

def test_info_names_unusable_images_and_drops_nothing(run, tmp_path):
    import tifffile, numpy as np
    d, _ = run
    data = _copy(d/'data', tmp_path/'data')
    ids = sorted(pd.read_csv(data/'train_labels.csv', dtype={'id': str}).id)
    (data/'train'/f'{ids[0]}.tif').write_bytes(b'not an image')                                      # corrupt
    raw = (data/'train'/f'{ids[1]}.tif').read_bytes(); (data/'train'/f'{ids[1]}.tif').write_bytes(raw[:300])  # truncated
    tifffile.imwrite(data/'train'/f'{ids[2]}.tif', np.zeros((64,64,3), np.uint8))                      # wrong size
    r = histo('info', data, '--report', tmp_path/'out'/'info.csv', ok=False)
    err = _one_line(r, '3 of 240 images are unusable', ids[0], ids[2], 'Nothing was dropped', str(tmp_path/'out'/'info.csv'))
    assert 'Dropped' not in r.stdout and '240 patches' in r.stdout and ids[1] in r.stdout   # counted, named, kept
    rep = pd.read_csv(tmp_path/'out'/'info.csv', dtype={'id': str})
    assert sorted(rep.id)==ids[:3] and set(rep.split)=={'train'}
    cache = Path(os.environ['HISTO_CACHE'])
    assert not list(cache.glob('*.csv'))                                                     # no report where nobody looks
    r = histo('train', data, '--out', tmp_path/'run', ok=False)
    _one_line(r, '3 of 240 images are unusable', ids[0], '--skip-bad')
    r = histo('train', data, '--out', tmp_path/'run', '--skip-bad', '--epochs', 1, '--crop', 32, '--patience', 0)
    assert sorted(pd.read_csv(tmp_path/'run'/'dropped_items.csv', dtype={'id': str}).id)==ids[:3]
    assert json.loads((tmp_path/'run'/'model.json').read_text())['train']['n_train'] + \
           json.loads((tmp_path/'run'/'model.json').read_text())['train']['n_valid'] == 237

def test_one_class_stops_before_training(run, tmp_path):
    d, _ = run
    data = _copy(d/'data', tmp_path/'data')
    lbl = pd.read_csv(data/'train_labels.csv', dtype={'id': str})
    lbl.assign(label=0).to_csv(data/'train_labels.csv', index=False)
    r = histo('train', data, '--out', tmp_path/'r', '--epochs', 1, ok=False)
    _one_line(r, 'one class only', f'(0 tumour, {len(lbl)} normal)', 'training data')
    assert not (tmp_path/'r'/'checkpoints').exists()
    lbl.to_csv(data/'train_labels.csv', index=False)
    v = lbl[lbl.label==1].head(20).assign(src=lambda x: [str(data/'train'/f'{i}.tif') for i in x.id])[['id','src','label']]
    v.to_csv(tmp_path/'v.csv', index=False)
    r = histo('train', data, '--out', tmp_path/'r', '--valid', tmp_path/'v.csv', ok=False)
    _one_line(r, 'validation', 'one class only (20 tumour, 0 normal)')

TAMPER = {
    'no model.json': (lambda r: (r/'model.json').unlink(), 'model.json'),
    'model.json not JSON': (lambda r: (r/'model.json').write_text('{"arch": '), 'not valid JSON'),
    'model.json a list': (lambda r: (r/'model.json').write_text('[1, 2]'), 'JSON object'),
    'missing key': (lambda r: _edit(r, lambda c: c.pop('mean')), 'lacks required keys: mean'),
    'unknown arch': (lambda r: _edit(r, lambda c: c.update(arch='resnet_nosuch')), "Unknown architecture 'resnet_nosuch'"),
    'bad crop': (lambda r: _edit(r, lambda c: c.update(crop='big')), "'crop' must be"),
    'mismatched weights': (lambda r: _edit(r, lambda c: c['model_kwargs'].update(widths=[8, 16])), 'does not match'),
    'truncated weights': (lambda r: (r/'model.safetensors').write_bytes((r/'model.safetensors').read_bytes()[:5000]), 'model.safetensors does not match'),
    'empty weights': (lambda r: (r/'model.safetensors').write_bytes(b''), 'model.safetensors'),
}
def _edit(r, f):
    c = json.loads((r/'model.json').read_text()); f(c); (r/'model.json').write_text(json.dumps(c))

def test_tampered_run_folders(run, tmp_path):
    import shutil
    d, _ = run
    for i,(name,(tamper, want)) in enumerate(TAMPER.items()):
        rd = tmp_path/f'run{i}'; rd.mkdir()
        for f in ('model.json', 'model.safetensors'): shutil.copy(d/'run'/f, rd/f)
        tamper(rd)
        r = histo('predict', rd, d/'data', '--out', tmp_path/'s.csv', '--backend', 'torch', ok=False)
        _one_line(r, want, f'run{i}')
        if i%3==0:  # the same check through evaluate and explain, for a few of them
            _one_line(histo('evaluate', rd, d/'data', '--out', tmp_path/'rep', '--sample', 10, ok=False), want)
            _one_line(histo('explain', rd, d/'data', '--out', tmp_path/'c.png', '--n', 2, '--split', 'train', ok=False), want)
    assert not (tmp_path/'s.csv').exists()

def test_outputs_that_cannot_be_written(run, tmp_path):
    d, _ = run
    (tmp_path/'blocker').write_text('a file where a folder should be')
    b = tmp_path/'blocker'
    _one_line(histo('predict', d/'run', d/'data', '--out', b/'sub.csv', ok=False), 'Cannot write', 'blocker is a file')
    _one_line(histo('evaluate', d/'run', d/'data', '--out', b/'rep', ok=False), 'Cannot write', 'blocker is a file')
    _one_line(histo('explain', d/'run', d/'data', '--out', b/'c.png', ok=False), 'Cannot write', 'blocker is a file')
    _one_line(histo('train', d/'data', '--out', b/'run', ok=False), 'Cannot write', 'blocker is a file')
    _one_line(histo('info', d/'data', '--report', b/'r.csv', ok=False), 'Cannot write', 'blocker is a file')
    _one_line(histo('predict', d/'run', d/'data', '--out', tmp_path, ok=False), 'Cannot write', 'it is a folder')
    if os.geteuid()!=0:  # root writes into read-only folders
        ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o555)
        try: _one_line(histo('predict', d/'run', d/'data', '--out', ro/'sub.csv', ok=False), 'Cannot write', 'not writable')
        finally: ro.chmod(0o755)

def test_bad_data_folders(tmp_path):
    (tmp_path/'file').write_text('x')
    _one_line(histo('info', tmp_path/'file', ok=False), 'is a file; give the dataset folder')
    _one_line(histo('train', tmp_path/'file', '--out', tmp_path/'r', ok=False), 'is a file; give the dataset folder')
    for c in '01':  # an image format histo_lib cannot read (files named .bmp), and a .png that is not one
        (tmp_path/'f'/'train'/c).mkdir(parents=True); (tmp_path/'f'/'train'/c/'a.bmp').write_bytes(b'BM' + bytes(100))
    _one_line(histo('info', tmp_path/'f', ok=False), 'a.bmp', 'formats histo_lib cannot read')
    for c in '01': (tmp_path/'f'/'train'/c/'b.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    _one_line(histo('train', tmp_path/'f', '--out', tmp_path/'r', ok=False), '1 ids appear more than once: b')  # one name in 0/ and 1/
    (tmp_path/'f'/'train'/'1'/'b.png').rename(tmp_path/'f'/'train'/'1'/'c.png')
    _one_line(histo('train', tmp_path/'f', '--out', tmp_path/'r', ok=False), '2 of 2 images are unusable', 'cannot be read', 'b.png', 'c.png')

def test_machine_log_is_short(run, tmp_path):
    "stdout to a file: one line per epoch, no bar redraws (issue 15: 2 epochs, at most 10 carriage returns and 30 KB)."
    d, _ = run
    log = tmp_path/'log'
    with open(log, 'w') as f:
        r = subprocess.run(histo_cmd()+['train', str(d/'data'), '--out', str(tmp_path/'r'), '--epochs', '2', '--crop', '32', '--patience', '0'],
                           stdout=f, stderr=subprocess.STDOUT, cwd=d, timeout=600)
    txt = log.read_text()
    assert r.returncode==0 and txt.count('\r')<=10 and len(txt.encode())<=30_000, txt[-2000:]
    assert [l.split(':')[0] for l in txt.splitlines() if l.startswith('epoch ')]==['epoch 1/2', 'epoch 2/2'], txt
    assert 'Warning' not in txt and '█' not in txt
    q = histo('train', d/'data', '--out', tmp_path/'q', '--epochs', 1, '--crop', 32, '--quiet', cwd=d)
    assert 'epoch 1/1' not in q.stdout and 'Saved' in q.stdout
    p = histo('train', d/'data', '--out', tmp_path/'p', '--epochs', 1, '--crop', 32, '--progress', cwd=d)
    assert 'epoch 1/1' not in p.stdout and '100.00%' in p.stdout                              # fastai's bars, asked for

def test_sigterm_keeps_the_checkpoint_and_resume_finishes(run, tmp_path):
    import signal, time
    d, _ = run
    out = tmp_path/'r'
    args = ['train', str(d/'data'), '--out', str(out), '--epochs', '6', '--crop', '64', '--patience', '0']
    p = subprocess.Popen(histo_cmd()+args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=d)
    t0 = time.time()
    while not (out/'checkpoints'/'last.json').exists() and p.poll() is None and time.time()-t0<300: time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode==143 and 'Traceback' not in err and err.strip().count('\n')==0 and '--resume' in err, err
    ck = json.loads((out/'checkpoints'/'last.json').read_text())
    assert ck['epoch']<5 and (out/'checkpoints'/ck['weights']).is_file() and (out/'checkpoints'/ck['state']).is_file()
    assert not [q for q in (out/'checkpoints').iterdir() if q.name.startswith('.')]          # no temporary left behind
    r = histo(*args, '--resume', cwd=d)
    assert f"Resuming at epoch {ck['epoch']+1} of 6" in r.stdout
    assert list(pd.read_csv(out/'history.csv').epoch)==list(range(6)) and (out/'model.safetensors').exists()

def test_two_trainings_at_once_on_a_fresh_dataset(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HISTO_CACHE': str(tmp_path/'cache')}
    histo('synth', tmp_path/'data', '--n-train', 3000, '--n-test', 10, '--seed', 9)   # > one 2048-image decode step
    ps = [subprocess.Popen(histo_cmd()+['train', str(tmp_path/'data'), '--out', str(tmp_path/f'r{i}'), '--epochs', '1', '--crop', '32',
                                        '--quiet'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in ps]
    assert [p.returncode for p in ps]==[0, 0], outs
    assert len(list((tmp_path/'cache').glob('*.npy')))==1 and len(list((tmp_path/'cache').glob('*.json')))==1
    s = [json.loads((tmp_path/f'r{i}'/'model.json').read_text())['valid_scores'] for i in range(2)]
    assert s[0]==s[1]                                                                       # both read the same, whole cache
