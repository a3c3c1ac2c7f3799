"The `histo` command line, end to end through subprocesses, as a user (or another tool) runs it."
import json, subprocess, os
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
    r = histo('train', d/'data', '--out', d/'run', cwd=d)
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
    assert 'Saved' in r.stdout

def test_flags_override_settings(run, tmp_path):
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'r2', '--crop', 48, '--recipe', 'tiny', '--patience', 0, cwd=d)
    cfg = json.loads((tmp_path/'r2'/'model.json').read_text())
    assert cfg['crop']==48 and cfg['train']['epochs']==2                                # flag beats settings, recipe beats DEFAULT

def test_speed_and_shift_flags_reach_training(run, tmp_path):
    d, _ = run
    histo('train', d/'data', '--out', tmp_path/'r3', '--crop', 64, '--shift', 8, '--bf16', '--channels-last', cwd=d)
    tr = json.loads((tmp_path/'r3'/'model.json').read_text())['train']
    assert (tr['shift'], tr['bf16'], tr['channels_last'], tr['crop'])==(8, True, True, 64)
    r = histo('train', d/'data', '--out', tmp_path/'r4', '--crop', 64, '--shift', 20, cwd=d, ok=False)
    assert r.returncode!=0 and 'can move by 0..16 px' in r.stderr                          # a shift that leaves the patch

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
    assert rep['n']==30 and rep['extra']['split']=='test' and rep['extra']['sample']==30
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
    assert (cfg['crop'], cfg['train']['epochs'], cfg['train']['ema'], cfg['model_kwargs']['widths']) == (96, 1, 0.998, [16, 32, 64])
    assert oct((tmp_path/'cb'/'model.json').stat().st_mode & 0o777) == '0o644'
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
