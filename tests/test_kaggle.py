"""The Kaggle kernel: the wheel dataset built by `kaggle/build_upload.py`, and the kernel script run end to end on a fake /kaggle tree.

The end-to-end tests run `kaggle/histo_kernel.py` in a fresh virtual environment that stands in for Kaggle's image: it
sees torch, fastai and the other dependencies (the running interpreter's site-packages, without histo_lib), but not
histo_lib, which the kernel must install offline from the wheel folder that `kaggle/build_upload.py` builds.
"""
from __future__ import annotations
import os, sys, json, site, shutil, subprocess, sysconfig
from pathlib import Path
import pandas as pd, pytest
from histo_lib.synth import make_synth
from histo_lib.submission import validate_submission
from histo_lib.kaggle import competition_slug

REPO = Path(__file__).resolve().parent.parent
KAGGLE = REPO/'kaggle'

# --- a fake Kaggle: competition data, the wheel dataset and an "image" without histo_lib

def _is_histo(name:str)->bool:
    n = name.lower().replace('-', '_')
    return n.startswith(('histo_lib', '__editable__')) or n.endswith('.pth')

def _image_dir(dest:Path)->Path:
    "Symlinks to everything in this interpreter's site-packages except histo_lib, its editable finder and .pth files."
    dest.mkdir()
    for sp in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()['purelib']]):
        for p in Path(sp).iterdir() if Path(sp).is_dir() else []:
            if not _is_histo(p.name) and not (dest/p.name).exists(): (dest/p.name).symlink_to(p)
    return dest

@pytest.fixture(scope='module')
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp('kaggle')
    inp = root/'input'
    make_synth(inp/competition_slug, n_train=400, n_test=100, seed=7)
    r = subprocess.run([sys.executable, str(KAGGLE/'build_upload.py'), str(inp/'histo-lib-wheels')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    venv = root/'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    py = venv/'bin'/'python'
    purelib = subprocess.run([py, '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    # a path line in a .pth adds the folder to sys.path, but .pth files inside it are not processed
    (Path(purelib)/'_kaggle_image.pth').write_text(str(_image_dir(root/'image'))+'\n')
    env = {k:v for k,v in os.environ.items() if not k.startswith(('PIP_', 'PYTHON', 'VIRTUAL_ENV', 'HISTO_', 'KAGGLE_'))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT='1', PIP_DISABLE_PIP_VERSION_CHECK='1', OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1', KAGGLE_INPUT=str(inp), HISTO_CACHE=str(root/'cache'), HISTO_EPOCHS='1', HISTO_CROP='32',
               HISTO_MAX_TRAIN='300', HISTO_SEED='5')
    return dict(root=root, inp=inp, py=py, venv=venv, env=env, build_out=r.stdout, runs={})

def run_kernel(kaggle, name:str, **env)->tuple[subprocess.CompletedProcess, Path]:
    "Run the kernel script with the fresh venv's python, from a folder outside the repo; returns (process, working)."
    work, cwd = kaggle['root']/name, kaggle['root']/f'{name}-cwd'
    cwd.mkdir()
    r = subprocess.run([kaggle['py'], str(KAGGLE/'histo_kernel.py')], cwd=cwd, capture_output=True, text=True, timeout=600,
                       env={**kaggle['env'], 'KAGGLE_WORKING': str(work), **env})
    assert r.returncode == 0, f"kernel failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r, work

def first_run(kaggle):
    "The first kernel run (training), shared by the tests below; checks histo_lib is not importable before it."
    if 'train1' not in kaggle['runs']:
        probe = "import importlib.util as u; print(u.find_spec('histo_lib') is None, u.find_spec('fastai') is not None)"
        r = subprocess.run([kaggle['py'], '-c', probe], cwd=kaggle['root'], capture_output=True, text=True, env=kaggle['env'])
        assert r.stdout.split() == ['True', 'True'], f"the fresh venv must see fastai but not histo_lib: {r.stdout} {r.stderr}"
        kaggle['runs']['train1'] = run_kernel(kaggle, 'train1')
    return kaggle['runs']['train1']

def test_build_upload(kaggle):
    out = kaggle['inp']/'histo-lib-wheels'
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and names[0] == 'dataset-metadata.json' and names[1].startswith('histo_lib-')
    assert json.loads((out/'dataset-metadata.json').read_text()) == {
        'title': 'histo-lib-wheels', 'id': 'histo-lib/histo-lib-wheels', 'licenses': [{'name': 'apache-2.0'}]}
    assert f"kaggle datasets create -p {out}" in kaggle['build_out']

def test_kernel_end_to_end(kaggle):
    r, work = first_run(kaggle)
    assert '--no-index --find-links' in r.stdout, r.stdout[-2000:]  # it had to install histo_lib itself
    summary = json.loads((work/'kernel_summary.json').read_text())
    assert Path(summary['histo_lib_file']).is_relative_to(kaggle['venv'].resolve()), summary['histo_lib_file']  # from the wheel
    assert (summary['mode'], summary['n_train'], summary['n_test']) == ('train', 300, 100)
    assert {'find data', 'train', 'predict', 'write submission'} <= set(summary['timings'])
    sample = kaggle['inp']/competition_slug/'sample_submission.csv'
    validate_submission(work/'submission.csv', sample)
    sub = pd.read_csv(work/'submission.csv', dtype={'id':str})
    assert list(sub['id']) == list(pd.read_csv(sample, dtype={'id':str})['id'])
    assert sub['label'].between(0, 1).all() and not sub['label'].isin([0, 1]).all() and sub['label'].nunique() > 10
    assert not (kaggle['root']/'train1-cwd').exists() or not any((kaggle['root']/'train1-cwd').iterdir())  # writes only to WORKING

def test_kernel_same_seed_same_submission(kaggle):
    _, work1 = first_run(kaggle)
    r, work2 = run_kernel(kaggle, 'train2')
    assert '--find-links' not in r.stdout  # already installed by the first run: the import path
    assert (work2/'submission.csv').read_bytes() == (work1/'submission.csv').read_bytes()
    _, work3 = run_kernel(kaggle, 'train3', HISTO_SEED='6')
    assert (work3/'submission.csv').read_bytes() != (work1/'submission.csv').read_bytes()  # the seed matters

def test_kernel_predict_mode(kaggle):
    _, work1 = first_run(kaggle)
    shutil.copytree(work1/'run', kaggle['inp']/'histo-lib-model', ignore=shutil.ignore_patterns('checkpoints'))
    try:
        r, work = run_kernel(kaggle, 'predict', HISTO_MODE='predict', HISTO_MODEL_DIR='histo-lib-model')
        assert json.loads((work/'kernel_summary.json').read_text())['n_train'] is None
        assert (work/'submission.csv').read_bytes() == (work1/'submission.csv').read_bytes()
    finally: shutil.rmtree(kaggle['inp']/'histo-lib-model')
