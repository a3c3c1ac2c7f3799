"""The `histo` command line end to end, as a user (or another tool) runs it. Most commands run in this process through
`histo_lib.cli.main` (conftest's `histo`); the contract that needs a real process (exit status and one line from the console
script, stdout to a file, SIGTERM, two processes at once, a write the kernel refuses) runs as subprocesses (`proc=True`)."""
import json, os, sys, shutil, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest
from sklearn.metrics import roc_auc_score, confusion_matrix
from conftest import histo, histo_cmd, one_line, tiny_settings

def model_json(run): return json.loads((Path(run)/'model.json').read_text())
def labels(data, name='train_labels.csv'): return pd.read_csv(Path(data)/name, dtype={'id': str})

def test_synth_layout(kaggle_data):
    assert {p.name for p in kaggle_data.iterdir()} >= {'train', 'test', 'train_labels.csv', 'sample_submission.csv', 'test_labels.csv'}
    assert len(labels(kaggle_data))==240 and len(list((kaggle_data/'test').iterdir()))==48

def test_train_artefact_uses_settings(trained):
    run, r = trained
    cfg = model_json(run)
    assert cfg['crop']==32 and cfg['arch']=='reference' and cfg['train']['epochs']==1   # from ./settings.ini
    assert (run/'model.safetensors').exists() and len(pd.read_csv(run/'history.csv'))==1
    assert {p.name for p in (run/'checkpoints').iterdir()} >= {'best.pth', 'last.json', 'last.0.pth'}
    assert 'Saved' in r.stdout

def test_flags_override_settings_and_reach_training(work, kaggle_data, tmp_path):
    "One training, many flags: each beats ./settings.ini, --recipe beats [DEFAULT], each reaches model.json; stain statistics travel to predict."
    r = histo('train', kaggle_data, '--out', tmp_path/'r', '--crop', 48, '--recipe', 'tiny', '--patience', 0, '--shift', 8, '--bf16',
              '--channels-last', '--mixup', 0.4, '--stain-norm', 'reinhard', '--quiet', cwd=work)
    cfg = model_json(tmp_path/'r'); tr = cfg['train']
    assert cfg['crop']==48 and tr['epochs']==2                                              # flag beats settings, recipe beats DEFAULT
    assert (tr['shift'], tr['bf16'], tr['channels_last'], tr['crop'], tr['mixup'])==(8, True, True, 48, 0.4)
    assert cfg['stain_norm']['name']=='reinhard' and len(cfg['stain_norm']['means'])==3
    assert 'epoch 1/2' not in r.stdout and 'Saved' in r.stdout                               # --quiet
    histo('predict', tmp_path/'r', kaggle_data, '--out', tmp_path/'sn.csv', '--tta', 'none', '--backend', 'torch', cwd=work)
    shutil.copytree(tmp_path/'r', tmp_path/'plain', ignore=shutil.ignore_patterns('checkpoints'))
    (tmp_path/'plain'/'model.json').write_text(json.dumps({**cfg, 'stain_norm': None}))
    histo('predict', tmp_path/'plain', kaggle_data, '--out', tmp_path/'plain.csv', '--tta', 'none', '--backend', 'torch', cwd=work)
    sn, plain = pd.read_csv(tmp_path/'sn.csv').label, pd.read_csv(tmp_path/'plain.csv').label
    assert sn.between(0,1).all() and abs(sn - plain).max() > 1e-4                            # predict applied the run's stain normalization
    r = histo('train', kaggle_data, '--out', tmp_path/'r4', '--crop', 64, '--shift', 20, cwd=work, ok=False)
    assert r.returncode!=0 and 'can move by 0..16 px' in r.stderr                             # a shift that leaves the patch

def test_refit_trains_on_every_label(work, kaggle_data, tmp_path):
    "--refit: the validation items train too; epochs cannot then be chosen by them, so keep=best is refused in one line."
    histo('train', kaggle_data, '--out', tmp_path/'all', '--refit', '--keep', 'last', '--patience', 0, cwd=work)
    tr = model_json(tmp_path/'all')['train']
    assert (tr['refit'], tr['n_train'], tr['n_valid'])==(True, 240, 48)                     # 192 + 48 validation items train
    r = histo('evaluate', tmp_path/'all', kaggle_data, '--split', 'train', '--out', tmp_path/'rep', '--tta', 'none', cwd=work)
    assert json.loads((tmp_path/'rep'/'report.json').read_text())['extra']['trained_on']==48  # evaluate says which items trained it
    assert 'Note: 48 of these 240 items are validation items' in r.stdout and 'measures fit, not generalisation' in r.stdout
    r = histo('train', kaggle_data, '--out', tmp_path/'best', '--refit', cwd=work, ok=False)
    assert r.returncode==2 and 'set keep = last and patience = 0' in r.stderr and r.stderr.strip().count('\n')==0
    assert not (tmp_path/'best').exists()

def test_predict_and_check(work, run_dir, kaggle_data, tmp_path):
    histo('predict', run_dir, kaggle_data, '--out', tmp_path/'sub.csv', cwd=work)
    sub, sample = pd.read_csv(tmp_path/'sub.csv'), pd.read_csv(kaggle_data/'sample_submission.csv')
    assert list(sub.columns)==['id','label'] and list(sub.id)==list(sample.id)
    assert sub.label.between(0,1).all() and sub.label.nunique()>2                         # probabilities, not 0/1
    r = histo('check-submission', tmp_path/'sub.csv', '--sample-submission', kaggle_data/'sample_submission.csv')
    assert 'valid submission' in r.stdout

def test_ensemble_rank_of_two_runs(work, run_dir, kaggle_data, tmp_path):
    "`--ensemble rank` of two different runs is the mean of their ranks / N, which is not the mean of their probabilities."
    import torch
    from safetensors.torch import load_file, save_file
    from scipy.stats import rankdata
    run2 = tmp_path/'run2'; shutil.copytree(run_dir, run2, ignore=shutil.ignore_patterns('checkpoints'))
    sd = load_file(run2/'model.safetensors')
    g = np.random.default_rng(0)
    noise = lambda v: torch.from_numpy(g.standard_normal(tuple(v.shape))).to(v.dtype)*v.std()*0.5
    save_file({k: v + noise(v) if v.is_floating_point() and v.ndim>=2 else v for k,v in sd.items()}, run2/'model.safetensors')  # conv and dense weights moved
    p = [pd.read_csv(histo_predict(work, r, kaggle_data, tmp_path/f'p{i}.csv')).label.values for i,r in enumerate((run_dir, run2))]
    assert rankdata(p[0]).tolist()!=rankdata(p[1]).tolist()                                 # two models that order items differently
    ens = pd.read_csv(histo_predict(work, [run_dir, run2], kaggle_data, tmp_path/'ens.csv', '--ensemble', 'rank'))
    assert list(ens.id)==list(pd.read_csv(kaggle_data/'sample_submission.csv').id)
    want = (rankdata(p[0]) + rankdata(p[1])) / 2 / len(p[0])
    np.testing.assert_allclose(ens.label.values, want, atol=1e-6)
    assert np.abs(ens.label.values - (p[0]+p[1])/2).max() > 1e-3                             # the mean would differ

def histo_predict(work, runs, data, out, *more):
    histo('predict', *([runs] if not isinstance(runs, list) else runs), data, '--out', out, '--tta', 'none', *more, cwd=work)
    return out

def test_check_submission_names_problems(kaggle_data, tmp_path):
    sample = pd.read_csv(kaggle_data/'sample_submission.csv')
    sample.assign(label=1).iloc[1:].to_csv(tmp_path/'bad.csv', index=False)
    r = histo('check-submission', tmp_path/'bad.csv', '--sample-submission', kaggle_data/'sample_submission.csv', ok=False)
    assert r.returncode==2 and sample.id[0] in r.stdout and 'Traceback' not in r.stderr

def test_evaluate_report(work, run_dir, kaggle_data, tmp_path):
    "The report's numbers equal sklearn's on predict's probabilities joined by id to test_labels.csv: a wrong join or metric shows."
    histo('predict', run_dir, kaggle_data, '--out', tmp_path/'p.csv', '--tta', 'none', cwd=work)
    r = histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'rep', '--tta', 'none', cwd=work)
    rep = json.loads((tmp_path/'rep'/'report.json').read_text())
    p = pd.read_csv(tmp_path/'p.csv', dtype={'id': str})
    y = labels(kaggle_data, 'test_labels.csv').set_index('id').label.loc[p.id].values
    auc = roc_auc_score(y, p.label)
    assert 0.5 < auc < 1, auc                                                                # a model whose AUC a wrong join would move
    assert rep['n']==48 and rep['n_pos']==y.sum() and rep['extra']['split']=='test' and rep['extra']['trained_on']==0
    assert rep['roc_auc']==pytest.approx(auc, abs=1e-6)
    assert rep['confusion_matrix']==confusion_matrix(y, (p.label>=0.5).astype(int), labels=[0, 1]).tolist()
    from histo_lib.evaluate import metrics_report
    edge = metrics_report([0, 1, 0, 1, 0], [0.5, 0.5, 0.2, 0.8, 0.49])                       # p == 0.5 is called tumour (>=, not >)
    assert (edge['confusion_matrix'], edge['sensitivity'], edge['specificity']) == ([[2, 1], [0, 2]], 1.0, 2/3)
    assert {'roc.png','confusion.png','report.md','errors.png'} <= {q.name for q in (tmp_path/'rep').iterdir()}
    assert f"{auc:.4f}" in r.stdout and 'ROC AUC' in r.stdout
    histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'rep30', '--tta', 'none', '--sample', 30, cwd=work)
    rep = json.loads((tmp_path/'rep30'/'report.json').read_text())
    assert rep['n']==30 and rep['extra']['sample']==30 and sum(map(sum, rep['confusion_matrix']))==30

def test_evaluate_operating_points_and_threshold_transfer(work, run_dir, kaggle_data, tmp_path):
    "The report holds operating points, ECE and reliability.png; a threshold chosen on one set, applied to another, is the one used there and reported."
    histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'valid', '--split', 'train', '--sample', 60, '--tta', 'none', cwd=work)
    src = json.loads((tmp_path/'valid'/'report.json').read_text())
    pts = src['operating_points']['points']
    assert list(pts) == ['spec90', 'spec95', 'spec99'] and src['operating_points']['n_boot'] == 1000
    for v in pts.values():
        assert v['specificity'] >= v['target_specificity'] and v['sensitivity_ci'][0] <= v['sensitivity'] <= v['sensitivity_ci'][1]
    assert 0 <= src['calibration']['ece'] <= 1 and sum(src['calibration']['bins']['count']) == 60
    assert (tmp_path/'valid'/'reliability.png').read_bytes()[:4] == b'\x89PNG' and 'spec95' in (tmp_path/'valid'/'report.md').read_text()
    # the spec90 threshold of that report, applied to the test set: the confusion matrix uses it, the report says where it came from
    r = histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'test', '--tta', 'none', '--threshold-from', tmp_path/'valid'/'report.json',
              '--operating-point', 'spec90', cwd=work)
    rep = json.loads((tmp_path/'test'/'report.json').read_text())
    t = rep['threshold_transfer']
    assert rep['threshold'] == t['threshold'] == pts['spec90']['threshold'] and t['operating_point'] == 'spec90'
    assert t['source'] == str(tmp_path/'valid'/'report.json') and t['source_sensitivity'] == pts['spec90']['sensitivity']
    (tn, fp), (fn, tp) = rep['confusion_matrix']
    assert (t['sensitivity'], t['specificity']) == (pytest.approx(tp/(tp+fn)), pytest.approx(tn/(tn+fp)))
    assert 'spec90 of' in r.stdout and '## Threshold from another set' in (tmp_path/'test'/'report.md').read_text()
    # mistakes are one line each, before any prediction
    one_line(histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'x', '--threshold', 0.3, '--threshold-from', tmp_path/'valid', ok=False), 'not both')
    one_line(histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'x', '--threshold-from', tmp_path/'valid', '--operating-point', 'spec97', ok=False),
             "no operating point 'spec97'", 'spec90, spec95, spec99')
    one_line(histo('evaluate', run_dir, kaggle_data, '--out', tmp_path/'x', '--operating-point', 'spec95', ok=False), '--threshold-from')

def test_info(kaggle_data):
    s = json.loads(histo('info', kaggle_data, '--json').stdout)
    assert s['layout']=='kaggle' and s['splits']['train']['n']==240 and s['splits']['test']['n']==48

def test_explain_png(work, run_dir, kaggle_data, tmp_path):
    histo('explain', run_dir, kaggle_data, '--out', tmp_path/'cam.png', '--n', 4, '--split', 'train', cwd=work)
    from PIL import Image
    im = Image.open(tmp_path/'cam.png'); w, h = im.size
    assert im.format=='PNG' and w==640 and 180<=h<=215, (im.format, w, h)                   # --n 4: one row of four 1.6-inch panels at 100 dpi
    px = np.asarray(im.convert('RGB')).reshape(-1, 3)
    assert len(np.unique(px, axis=0)) > 2000                                                 # patches and heat maps drawn, not an empty grid

@pytest.mark.parametrize('cmd', ['synth','info','train','predict','slide','evaluate','check-submission','explain','evaluate-slides','extract','view'])
def test_help(cmd):
    assert 'usage: histo '+cmd in histo(cmd, '--help').stdout

def test_user_error_is_one_line(tmp_path):
    one_line(histo('train', tmp_path/'missing', '--out', tmp_path/'o', ok=False), 'does not exist')

def test_synth_slide_from_a_folder_errors_are_one_line(pcam, tmp_path):
    "`histo synth --from DIR` needs --format slide and a folder with 0/ and 1/: one line each, nothing made."
    one_line(histo('synth', tmp_path/'a', '--from', pcam/'valid', ok=False), '--format slide')
    one_line(histo('synth', tmp_path/'b', '--format', 'slide', '--from', pcam, ok=False), str(pcam/'1'), 'holds no images')
    assert not (tmp_path/'a').exists() and not (tmp_path/'b').exists()

def test_one_parameter_source_from_any_folder(kaggle_data, tmp_path):
    "Issue 12's check, from a folder outside the checkout: a packaged recipe works (here as a user recipe's base), bad names and values fail first."
    (tmp_path/'settings.ini').write_text("[short]\nbase = cpu-best\nepochs = 2\n")   # cpu-best's keys, then its own; the flag beats both
    histo('train', kaggle_data, '--out', tmp_path/'cb', '--recipe', 'short', '--epochs', 1, cwd=tmp_path, umask=0o022)
    cfg = model_json(tmp_path/'cb')
    assert (cfg['arch'], cfg['crop'], cfg['train']['epochs'], cfg['train']['ema'], cfg['train']['keep'], cfg['model_kwargs']['widths']) == \
           ('reference', 96, 1, 0.998, 'last', [16, 32, 64])
    assert [oct((tmp_path/'cb'/f).stat().st_mode & 0o777) for f in ('model.json', 'model.safetensors', 'curves.png')] == ['0o644']*3
    r = histo('train', kaggle_data, '--out', tmp_path/'big', '--crop', 128, cwd=tmp_path, ok=False)
    one_line(r, 'crop = 128 is out of range')
    assert not (tmp_path/'big').exists()
    (tmp_path/'settings.ini').write_text("[DEFAULT]\nepoch = 3\n")
    r = histo('train', kaggle_data, '--out', tmp_path/'typo', cwd=tmp_path, ok=False)
    one_line(r, "unknown setting 'epoch'. Did you mean 'epochs'?")
    assert not (tmp_path/'typo').exists()

def test_value_errors_before_torch(kaggle_data, tmp_path):
    "Issue 33: a value out of range (`--crop 128`) or a misspelt setting is refused before torch is imported: a fraction of a second, not seconds."
    code = ("import sys; from histo_lib.cli import main\n"
            "try: main(sys.argv[1:])\nexcept SystemExit as e: print(e.code, sorted({'torch', 'fastai'} & set(sys.modules)))")
    run = lambda *a: subprocess.run([sys.executable, '-c', code, 'train', str(kaggle_data), '--out', str(tmp_path/'o'), *a], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    r = run('--crop', '128')
    assert r.stdout.split() == ['2', '[]'] and 'crop = 128 is out of range (32 to 96)' in r.stderr, (r.stdout, r.stderr[-2000:])
    (tmp_path/'settings.ini').write_text("[DEFAULT]\nepoch = 3\n")
    r = run()
    assert r.stdout.split() == ['2', '[]'] and "unknown setting 'epoch'. Did you mean 'epochs'?" in r.stderr, (r.stdout, r.stderr[-2000:])
    (tmp_path/'settings.ini').write_text("[a]\nbase = b\n[b]\nbase = a\n")
    r = run('--recipe', 'a')
    assert r.stdout.split() == ['2', '[]'] and 'Recipe bases go round in a circle: [a] -> [b] -> [a]' in r.stderr, (r.stdout, r.stderr[-2000:])
    assert not (tmp_path/'o').exists()

def test_transfer_learning_from_a_local_timm_checkpoint(work, folder_data, tmp_path):
    "--weights: timm's loader reads a local ImageNet-style checkpoint (made here: nothing is downloaded), normalized with its stats (on the small ImageFolder set)."
    import timm, torch
    torch.save({'state_dict': timm.create_model('resnet18', num_classes=1000).state_dict()}, tmp_path/'in1k.pth')
    histo('train', folder_data, '--out', tmp_path/'tl', '--arch', 'resnet18', '--weights', tmp_path/'in1k.pth', '--freeze-epochs', 1,
          '--epochs', 1, '--crop', 32, cwd=work)
    cfg = model_json(tmp_path/'tl')
    assert cfg['mean']==[0.485, 0.456, 0.406] and cfg['train']['lr_mult']==10.0 and cfg['train']['freeze_epochs']==1
    r = histo('train', folder_data, '--out', tmp_path/'tl2', '--arch', 'efficientnet_b0', '--weights', tmp_path/'in1k.pth', cwd=work, ok=False)
    one_line(r, 'in1k.pth do not fit efficientnet_b0')
    r = histo('train', folder_data, '--out', tmp_path/'tl3', '--weights', tmp_path/'none.pth', cwd=work, ok=False)
    one_line(r, 'none.pth not found')

def test_p4m_arch_onnx_tta_and_gradcam(work, kaggle_data, tmp_path):
    "Issue 16: `--arch p4m` trains, exports to ONNX (the CPU default backend) with the torch model's outputs, is invariant to the 8 views, and Grad-CAM explains it."
    histo('train', kaggle_data, '--out', tmp_path/'p4m', '--arch', 'p4m', '--crop', 32, '--patience', 0, cwd=work)
    assert model_json(tmp_path/'p4m')['arch']=='p4m'
    probs = {}
    for backend, tta in (('torch', 'none'), ('torch', 'dihedral'), ('onnx', 'dihedral')):
        out = tmp_path/f'{backend}_{tta}.csv'
        histo('predict', tmp_path/'p4m', kaggle_data, '--out', out, '--backend', backend, '--tta', tta, cwd=work)
        probs[backend, tta] = pd.read_csv(out).label.values
    assert probs['torch', 'none'].std() > 1e-3                                               # not a constant model
    assert abs(probs['torch', 'dihedral'] - probs['torch', 'none']).max() < 1e-4             # one view is all 8 views
    assert abs(probs['onnx', 'dihedral'] - probs['torch', 'dihedral']).max() < 1e-4          # ONNX runs the same model
    histo('explain', tmp_path/'p4m', kaggle_data, '--out', tmp_path/'cam.png', '--n', 4, '--split', 'train', cwd=work)
    assert (tmp_path/'cam.png').read_bytes()[:8]==b'\x89PNG\r\n\x1a\n'

def test_members_one_artefact_onnx_and_gradcam(work, kaggle_data, tmp_path):
    "Issue 16: `model_members = 2` trains a deep ensemble as one model: one artefact, ONNX with the torch outputs, Grad-CAM."
    (tmp_path/'ens.ini').write_text("[ens]\ncrop = 32\nepochs = 1\nbs = 32\nmodel_members = 2\nmodel_widths = (8, 16)\nmodel_dense = 32\n")
    histo('train', kaggle_data, '--out', tmp_path/'ens', '--settings', tmp_path/'ens.ini', '--recipe', 'ens', cwd=work)
    cfg = model_json(tmp_path/'ens')
    assert cfg['model_kwargs']=={'members': 2, 'widths': [8, 16], 'dense': 32}, cfg['model_kwargs']
    from safetensors import safe_open
    with safe_open(tmp_path/'ens'/'model.safetensors', 'pt') as f: keys = list(f.keys())
    assert {k.split('.')[1] for k in keys if k.startswith('members.')}=={'0', '1'} and all(k.startswith('members.') for k in keys)
    probs = {}
    for backend in ('torch', 'onnx'):
        histo('predict', tmp_path/'ens', kaggle_data, '--out', tmp_path/f'{backend}.csv', '--backend', backend, '--tta', 'flip', cwd=work)
        probs[backend] = pd.read_csv(tmp_path/f'{backend}.csv').label.values
    assert probs['torch'].std() > 1e-3 and abs(probs['onnx'] - probs['torch']).max() < 1e-4
    histo('explain', tmp_path/'ens', kaggle_data, '--out', tmp_path/'cam.png', '--n', 4, '--split', 'train', cwd=work)
    assert (tmp_path/'cam.png').read_bytes()[:8]==b'\x89PNG\r\n\x1a\n'

# --- issue 15: every bad input and fault gets one clear line and loses nothing -----------------------------------
def test_info_names_unusable_images_and_drops_nothing(work, kaggle_data, tmp_path):
    import tifffile
    data = shutil.copytree(kaggle_data, tmp_path/'data')
    ids = sorted(labels(data).id)
    (data/'train'/f'{ids[0]}.tif').write_bytes(b'not an image')                                      # corrupt
    raw = (data/'train'/f'{ids[1]}.tif').read_bytes(); (data/'train'/f'{ids[1]}.tif').write_bytes(raw[:300])  # truncated
    tifffile.imwrite(data/'train'/f'{ids[2]}.tif', np.zeros((64,64,3), np.uint8))                      # wrong size
    r = histo('info', data, '--report', tmp_path/'out'/'info.csv', ok=False)
    one_line(r, '3 of 240 images are unusable', ids[0], ids[2], 'Nothing was dropped', str(tmp_path/'out'/'info.csv'))
    assert 'Dropped' not in r.stdout and '240 patches' in r.stdout and ids[1] in r.stdout   # counted, named, kept
    rep = pd.read_csv(tmp_path/'out'/'info.csv', dtype={'id': str})
    assert sorted(rep.id)==ids[:3] and set(rep.split)=={'train'}
    assert not list(Path(os.environ['HISTO_CACHE']).glob('*.csv'))                           # no report where nobody looks
    one_line(histo('train', data, '--out', tmp_path/'run', ok=False, cwd=work), '3 of 240 images are unusable', ids[0], '--skip-bad')
    histo('train', data, '--out', tmp_path/'run', '--skip-bad', '--patience', 0, cwd=work)
    assert sorted(pd.read_csv(tmp_path/'run'/'dropped_items.csv', dtype={'id': str}).id)==ids[:3]
    tr = model_json(tmp_path/'run')['train']
    assert tr['n_train'] + tr['n_valid'] == 237

def test_one_class_stops_before_training(work, kaggle_data, tmp_path):
    data = shutil.copytree(kaggle_data, tmp_path/'data')
    lbl = labels(data)
    lbl.assign(label=0).to_csv(data/'train_labels.csv', index=False)
    one_line(histo('train', data, '--out', tmp_path/'r', ok=False, cwd=work), 'one class only', f'(0 tumour, {len(lbl)} normal)', 'training data')
    assert not (tmp_path/'r'/'checkpoints').exists()
    lbl.to_csv(data/'train_labels.csv', index=False)
    v = lbl[lbl.label==1].head(20).assign(src=lambda x: [str(data/'train'/f'{i}.tif') for i in x.id])[['id','src','label']]
    v.to_csv(tmp_path/'v.csv', index=False)
    one_line(histo('train', data, '--out', tmp_path/'r', '--valid', tmp_path/'v.csv', ok=False, cwd=work), 'validation', 'one class only (20 tumour, 0 normal)')

def _edit(r, f):
    c = json.loads((r/'model.json').read_text()); f(c); (r/'model.json').write_text(json.dumps(c))

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

def test_tampered_run_folders(run_dir, kaggle_data, tmp_path):
    for i,(name,(tamper, want)) in enumerate(TAMPER.items()):
        rd = tmp_path/f'run{i}'; rd.mkdir()
        for f in ('model.json', 'model.safetensors'): shutil.copy(run_dir/f, rd/f)
        tamper(rd)
        one_line(histo('predict', rd, kaggle_data, '--out', tmp_path/'s.csv', '--backend', 'torch', ok=False), want, f'run{i}')
        if i%3==0:  # the same check through evaluate and explain, for a few of them
            one_line(histo('evaluate', rd, kaggle_data, '--out', tmp_path/'rep', '--sample', 10, ok=False), want)
            one_line(histo('explain', rd, kaggle_data, '--out', tmp_path/'c.png', '--n', 2, '--split', 'train', ok=False), want)
    assert not (tmp_path/'s.csv').exists()

def test_outputs_that_cannot_be_written(run_dir, kaggle_data, tmp_path, monkeypatch):
    "Places no one can write to, as root too: under a file, onto a folder, a folder whose writes fail with EACCES."
    (tmp_path/'blocker').write_text('a file where a folder should be')
    b = tmp_path/'blocker'
    one_line(histo('predict', run_dir, kaggle_data, '--out', b/'sub.csv', ok=False), 'Cannot write', 'blocker is a file')
    one_line(histo('evaluate', run_dir, kaggle_data, '--out', b/'rep', ok=False), 'Cannot write', 'blocker is a file')
    one_line(histo('explain', run_dir, kaggle_data, '--out', b/'c.png', ok=False), 'Cannot write', 'blocker is a file')
    one_line(histo('train', kaggle_data, '--out', b/'run', ok=False), 'Cannot write', 'blocker is a file')
    one_line(histo('info', kaggle_data, '--report', b/'r.csv', ok=False), 'Cannot write', 'blocker is a file')
    one_line(histo('predict', run_dir, kaggle_data, '--out', tmp_path, ok=False), 'Cannot write', 'it is a folder')
    ro = tmp_path/'ro'; ro.mkdir()
    if os.geteuid()!=0:  # a real read-only folder (root writes into those) ...
        ro.chmod(0o555)
        try: one_line(histo('predict', run_dir, kaggle_data, '--out', ro/'sub.csv', ok=False), 'Cannot write', 'not writable')
        finally: ro.chmod(0o755)
    real_open = os.open                                          # ... and, for root as well, a folder where creating a file fails
    def refuse(path, *a, **kw):
        if str(path).startswith(str(ro)): raise PermissionError(13, 'Permission denied', str(path))
        return real_open(path, *a, **kw)
    monkeypatch.setattr(os, 'open', refuse)
    one_line(histo('predict', run_dir, kaggle_data, '--out', ro/'sub.csv', ok=False), 'Cannot write', 'not writable', 'Permission denied')
    assert not list(ro.iterdir())

def test_a_failed_write_keeps_the_earlier_file(work, run_dir, kaggle_data, tmp_path):
    "A write the kernel refuses for every user, root included (RLIMIT_FSIZE: 'File too large' once the file passes 1 KB): one line, the earlier file intact, no temporary left."
    import resource
    histo('predict', run_dir, kaggle_data, '--out', tmp_path/'warm.csv', '--tta', 'none', '--backend', 'torch', cwd=work)  # fills the decode cache
    (tmp_path/'sub.csv').write_text('id,label\nearlier,0.5\n')
    def small_files(): resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
    r = subprocess.run(histo_cmd()+['predict', str(run_dir), str(kaggle_data), '--out', str(tmp_path/'sub.csv'), '--tta', 'none', '--backend', 'torch'],
                       capture_output=True, text=True, cwd=work, preexec_fn=small_files, timeout=600)
    one_line(r, 'Cannot write', 'sub.csv', 'File too large', 'the earlier sub.csv is unchanged')
    assert (tmp_path/'sub.csv').read_text()=='id,label\nearlier,0.5\n'
    assert sorted(p.name for p in tmp_path.iterdir())==['sub.csv', 'warm.csv']

def test_bad_data_folders(tmp_path):
    (tmp_path/'file').write_text('x')
    one_line(histo('info', tmp_path/'file', ok=False), 'is a file; give the dataset folder')
    one_line(histo('train', tmp_path/'file', '--out', tmp_path/'r', ok=False), 'is a file; give the dataset folder')
    for c in '01':  # an image format histo_lib cannot read (files named .bmp), and a .png that is not one
        (tmp_path/'f'/'train'/c).mkdir(parents=True); (tmp_path/'f'/'train'/c/'a.bmp').write_bytes(b'BM' + bytes(100))
    one_line(histo('info', tmp_path/'f', ok=False), 'a.bmp', 'formats histo_lib cannot read')
    for c in '01': (tmp_path/'f'/'train'/c/'b.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    one_line(histo('train', tmp_path/'f', '--out', tmp_path/'r', ok=False), '1 ids appear more than once: b')  # one name in 0/ and 1/
    (tmp_path/'f'/'train'/'1'/'b.png').rename(tmp_path/'f'/'train'/'1'/'c.png')
    one_line(histo('train', tmp_path/'f', '--out', tmp_path/'r', ok=False), '2 of 2 images are unusable', 'cannot be read', 'b.png', 'c.png')

def test_sigterm_keeps_the_checkpoint_and_resume_finishes(work, kaggle_data, tmp_path):
    """SIGTERM mid-training: status 143 and one line, the last epoch's checkpoint whole; --resume from the same relative --out
    finishes (issue 24). The log, stdout to a file, is short (issue 15): one line per epoch, no bar redraws, no warnings."""
    import signal, time
    out, log, n = tmp_path/'r', tmp_path/'log', 8
    tiny_settings(tmp_path)  # the signal, not the fit, is tested
    args = ['train', str(kaggle_data), '--out', 'r', '--epochs', str(n), '--crop', '32', '--patience', '0']  # relative, as typed
    with open(log, 'w') as f:
        p = subprocess.Popen(histo_cmd()+args, stdout=f, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        t0 = time.time()
        while not (out/'checkpoints'/'last.json').exists() and p.poll() is None and time.time()-t0<300: time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    assert p.returncode==143 and 'Traceback' not in err and err.strip().count('\n')==0 and '--resume' in err, err
    ck = json.loads((out/'checkpoints'/'last.json').read_text())
    assert ck['epoch']<n-1 and (out/'checkpoints'/ck['weights']).is_file() and (out/'checkpoints'/ck['state']).is_file()
    assert not [q for q in (out/'checkpoints').iterdir() if q.name.startswith('.')]          # no temporary left behind
    assert not (out/'model.json').exists()
    txt = log.read_text()
    assert txt.count('\r')<=10 and len(txt.encode())<=30_000 and 'Warning' not in txt and '█' not in txt, txt[-2000:]
    assert [l.split(':')[0] for l in txt.splitlines() if l.startswith('epoch ')]==[f'epoch {i+1}/{n}' for i in range(ck['epoch']+1)], txt
    r = histo(*args, '--resume', cwd=tmp_path)
    assert f"Resuming at epoch {ck['epoch']+1} of {n}" in r.stdout
    assert list(pd.read_csv(out/'history.csv').epoch)==list(range(n)) and (out/'model.safetensors').exists()

def test_progress_bars_when_asked(work, kaggle_data, tmp_path):
    p = histo('train', kaggle_data, '--out', tmp_path/'p', '--epochs', 1, '--progress', cwd=work)
    assert 'epoch 1/1' not in p.stdout and '100.00%' in p.stdout                              # fastai's bars, asked for

def test_two_trainings_at_once_on_a_fresh_dataset(tmp_path, monkeypatch):
    "Two processes decode the same fresh set (more than one 2048-image decode step) into one shared cache and read it whole: the second starts once the first has begun writing the cache."
    import time
    from histo_lib.synth import make_synth
    tiny_settings(tmp_path, "epochs = 1\ncrop = 32\n")
    make_synth(tmp_path/'data', n_train=2100, n_test=10, seed=9)
    cache = tmp_path/'cache'; monkeypatch.setenv('HISTO_CACHE', str(cache))
    p = subprocess.Popen(histo_cmd()+['train', str(tmp_path/'data'), '--out', str(tmp_path/'r0'), '--quiet'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    t0 = time.time()
    while not (cache.is_dir() and any(cache.iterdir())) and p.poll() is None and time.time()-t0<300: time.sleep(0.05)
    histo('train', tmp_path/'data', '--out', tmp_path/'r1', '--quiet', cwd=tmp_path)
    out = p.communicate(timeout=600)
    assert p.returncode==0, out
    assert len(list(cache.glob('*.npy')))==1 and len(list(cache.glob('*.json')))==1
    s = [model_json(tmp_path/f'r{i}')['valid_scores'] for i in range(2)]
    assert s[0]==s[1]                                                                       # both read the same, whole cache
