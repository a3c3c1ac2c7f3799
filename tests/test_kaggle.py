"""The Kaggle kernels: the uploads `kaggle/build_upload.py` builds, and the kernel script and notebook run end to end by `kaggle/run_local.py`.

`run_local.py` runs `kaggle/histo_kernel.py` on a synthetic /kaggle/input in a fresh virtual environment that stands in
for Kaggle's image: it sees torch, fastai and the other dependencies (this interpreter's site-packages, without
histo_lib), but not histo_lib, which the kernel must install offline from the wheel folder of the upload. The wheel is
built once per session; two kernel runs cover the train mode with the offline install and the predict mode, and one
short run with `accelerate` hidden shows the kernel naming a missing requirement before it imports anything; the notebook
kernel runs once, tiny, in a Jupyter kernel of such a venv.
"""
from __future__ import annotations
import os, sys, json, subprocess
from pathlib import Path
import pandas as pd, pytest
from histo_lib.submission import validate_submission
from histo_lib.kaggle import competition_slug
from histo_lib.kaggle_upload import check_kernel_metadata

REPO = Path(__file__).resolve().parent.parent
KAGGLE = REPO/'kaggle'
QUICK = ['EPOCHS=1', 'CROP=32', 'BS=32', 'MAX_TRAIN=96', 'SEED=5']  # tiny: 96 items, one epoch, crop 32

def script(name:str, *args, timeout=600)->subprocess.CompletedProcess:
    env = {k:v for k,v in os.environ.items() if not k.startswith(('HISTO_', 'KAGGLE_'))}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HISTO_THREADS='1')
    return subprocess.run([sys.executable, str(KAGGLE/name), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)

@pytest.fixture(scope='session')
def upload(tmp_path_factory):
    "The two uploads, built once per session with the Kaggle name 'tester'."
    out = tmp_path_factory.mktemp('kaggle')/'upload'
    r = script('build_upload.py', '--user', 'tester', '--out', out)
    assert r.returncode == 0, r.stderr
    return dict(out=out, stdout=r.stdout)

def test_build_upload(upload):
    out = upload['out']
    names = sorted(p.name for p in (out/'wheels').iterdir())
    assert len(names) == 2 and names[0] == 'dataset-metadata.json' and names[1].startswith('histo_lib-'), names
    assert json.loads((out/'wheels'/'dataset-metadata.json').read_text())['id'] == 'tester/histo-lib-wheels'
    meta = json.loads((out/'kernel'/'kernel-metadata.json').read_text())
    assert (meta['id'], meta['dataset_sources'], meta['competition_sources']) == ('tester/histo-lib-kernel', ['tester/histo-lib-wheels'], [competition_slug])
    assert check_kernel_metadata(out/'kernel'/'kernel-metadata.json', 'tester/histo-lib-wheels') == []
    assert (out/'kernel'/'histo_kernel.py').read_text() == (KAGGLE/'histo_kernel.py').read_text()
    assert f"kaggle datasets create -p {out/'wheels'}" in upload['stdout'] and f"kaggle kernels push -p {out/'kernel'}" in upload['stdout']
    nbmeta = json.loads((out/'notebook'/'kernel-metadata.json').read_text())   # the notebook kernel, beside the script's
    assert (nbmeta['id'], nbmeta['kernel_type'], nbmeta['enable_internet'], nbmeta['dataset_sources']) == ('tester/histo-lib-notebook', 'notebook', False, ['tester/histo-lib-wheels'])
    assert (out/'notebook'/'histo_notebook.ipynb').read_text() == (KAGGLE/'histo_notebook.ipynb').read_text()
    assert f"kaggle kernels push -p {out/'notebook'}" in upload['stdout']

def test_build_upload_without_requirements(tmp_path):
    "A Python without histo_lib's requirements (here: no site-packages at all) gets one line naming what is missing, not a traceback."
    r = subprocess.run([sys.executable, '-S', str(KAGGLE/'build_upload.py'), '--user', 'tester', '--out', str(tmp_path/'up')], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: kaggle/build_upload.py needs histo_lib's requirements") and 'lacks ' in lines[0] and 'pip install -e .' in lines[0]
    assert not (tmp_path/'up').exists()

def test_build_upload_bad_user(tmp_path):
    r = script('build_upload.py', '--user', 'no such/user', '--out', tmp_path/'up')
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["error: --user 'no such/user' is not a Kaggle username: give yours, e.g. --user jane-doe."]
    assert not (tmp_path/'up').exists()

def test_local_kernel_train_then_predict(upload, tmp_path):
    root = tmp_path/'local'
    r = script('run_local.py', '--upload', upload['out'], '--root', root, '--n-train', 120, '--n-test', 40, *QUICK)
    assert r.returncode == 0, f"kernel failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert '-m pip install --no-index --no-deps' in r.stdout, r.stdout[-2000:]  # histo_lib was not there: the kernel installed it from the bundle
    work = root/'working'
    summary = json.loads((work/'kernel_summary.json').read_text())
    assert Path(summary['histo_lib_file']).is_relative_to((root/'venv').resolve()), summary['histo_lib_file']  # from the wheel
    assert (summary['mode'], summary['n_train'], summary['n_test'], summary['seed'], summary['model_cfg']['crop']) == ('train', 96, 40, 5, 32)
    assert {'find data', 'train', 'predict', 'write submission'} <= set(summary['timings'])
    sample = root/'input'/competition_slug/'sample_submission.csv'
    validate_submission(work/'submission.csv', sample)
    sub = pd.read_csv(work/'submission.csv', dtype={'id':str})
    assert list(sub['id']) == list(pd.read_csv(sample, dtype={'id':str})['id'])
    assert sub['label'].between(0, 1).all() and sub['label'].nunique() > 10
    assert sorted(p.name for p in root.iterdir()) == ['cache', 'input', 'venv', 'working']  # the kernel wrote only to WORKING (and the cache)
    first = (work/'submission.csv').read_bytes()
    # predict mode, with the train run's model attached as a dataset, in the same venv (the import path)
    r = script('run_local.py', '--upload', upload['out'], '--root', root, '--n-train', 120, '--n-test', 40, '--mode', 'predict', '--keep-venv')
    assert r.returncode == 0, f"kernel failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert 'pip install' not in r.stdout
    summary = json.loads((work/'kernel_summary.json').read_text())
    assert (summary['mode'], summary['n_train'], Path(summary['model'])) == ('predict', None, root/'input'/'histo-lib-model')
    assert (work/'submission.csv').read_bytes() == first

def test_local_kernel_names_missing_requirement(upload, tmp_path):
    "An image without accelerate (the [dist] extra the kernel uses), and a bundle without it: one line names it, before any import of histo_lib."
    r = script('run_local.py', '--upload', upload['out'], '--root', tmp_path/'local', '--n-train', 20, '--n-test', 10, '--hide', 'accelerate')
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-2]  # the kernel's line; run_local.py's own follows it
    assert last.startswith('histo_lib ') and 'accelerate>=1.0 (not installed)' in last and 'build_upload.py' in last, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr and 'NameError' not in r.stderr

def test_local_notebook_kernel(upload, tmp_path):
    "The notebook kernel, tiny, as Kaggle runs it: histo_lib installed offline in the venv, its pictures shown, a valid submission.csv of probabilities."
    root = tmp_path/'local'
    r = script('run_local.py', '--notebook', '--upload', upload['out'], '--root', root, '--n-train', 120, '--n-test', 40, *QUICK)
    assert r.returncode == 0, f"notebook failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    nb = json.loads((root/'executed.ipynb').read_text())
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c['outputs']]
    text = ''.join(''.join(o.get('text', '')) for o in outs)
    assert f"from {(root/'venv').resolve()}" in text or f"from {root/'venv'}" in text, text[-2000:]   # from the wheel, not this checkout
    assert sum('image/png' in o.get('data', {}) for o in outs) >= 5                          # batch, loss, results, confusion matrix, top losses
    assert not any(o['output_type'] == 'error' for o in outs)
    sample = root/'input'/competition_slug/'sample_submission.csv'
    validate_submission(root/'working'/'submission.csv', sample)
    sub = pd.read_csv(root/'working'/'submission.csv', dtype={'id':str})
    assert list(sub['id']) == list(pd.read_csv(sample, dtype={'id':str})['id']) and sub['label'].between(0, 1).all() and sub['label'].nunique() > 10
    assert (root/'working'/'run'/'model.json').is_file()
