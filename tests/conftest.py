"""Shared fixtures: one synthetic dataset per layout and one tiny trained run, made once per session; the real PCam patches
in the repository (samples/pcam-mini) and a tiny CNN trained on 400 of them; `histo` in-process or as a real subprocess. Tests treat the session fixtures as read-only (copy a folder before changing it)."""
import io, os, sys, subprocess
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
from typing import NamedTuple
import pytest

ROOT = Path(__file__).resolve().parents[1]
PCAM = ROOT/'samples'/'pcam-mini'   # 2,000 train + 500 valid real PCam patches, in the repository (samples/pcam-mini/README.md)

@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    "Each test session decodes into its own cache, never the user's ~/.cache."
    monkeypatch.setenv('HISTO_CACHE', str(tmp_path_factory.getbasetemp()/'histo_cache'))

@pytest.fixture(scope='session')
def pcam():
    "The real PCam patches every clone has: samples/pcam-mini (train/ and valid/, each 0/ and 1/)."
    assert (PCAM/'train'/'1').is_dir() and (PCAM/'valid'/'0').is_dir(), f"{PCAM} is missing: it is part of the repository"
    return PCAM

@pytest.fixture(scope='session')
def pcam_run(pcam, tmp_path_factory):
    """A tiny reference CNN (widths 8,16, dense 32, crop 64) trained for two epochs (bs 16) on 400 real patches of pcam-mini's
    train/, validated on 200 of valid/ (items CSVs, seeded): a model of real tissue in seconds, valid AUC about 0.76 (one
    epoch of 600 patches gave 0.68, one of 400 at bs 32 chance)."""
    import numpy as np
    from histo_lib.patches import load_items
    from histo_lib.train import train
    d, rng = tmp_path_factory.mktemp('pcam_run'), np.random.default_rng(0)
    for split, n in (('train', 200), ('valid', 100)):
        it = load_items(pcam, split)
        pick = np.concatenate([rng.choice(np.flatnonzero(it.label==c), n, replace=False) for c in (0, 1)])
        it.iloc[np.sort(pick)].to_csv(d/f'{split}.csv', index=False)
    train(d/'train.csv', d/'run', valid=str(d/'valid.csv'), epochs=2, crop=64, bs=16, lr=3e-3, patience=0, keep='last',
          model_kwargs=dict(widths=(8, 16), dense=32))
    return d/'run'

# --- running `histo` ---------------------------------------------------------------------------------------------
class Ran(NamedTuple):
    "What a finished `histo` command left: its exit status and what it printed."
    returncode:int
    stdout:str
    stderr:str

def histo_cmd():
    "The installed `histo` console script beside this interpreter."
    exe = Path(sys.executable).parent/'histo'
    return [str(exe)] if exe.exists() else [sys.executable, '-c', 'from histo_lib.cli import main; main()']

def histo_in_process(args:list, cwd=None, umask=None)->Ran:
    "`histo ARGS` through `histo_lib.cli.main` in this process: no interpreter start-up (~10 s of CPU each), same status and output."
    from histo_lib.cli import main
    out, err, code, here = io.StringIO(), io.StringIO(), 0, os.getcwd()
    old_mask = os.umask(umask) if umask is not None else None
    try:
        if cwd is not None: os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try: main([str(a) for a in args])
            except SystemExit as e:  # argparse (--help, bad flags) and main's one-line errors leave this way
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, (int, type(None))): print(e.code, file=sys.stderr)
    finally:
        os.chdir(here)
        if old_mask is not None: os.umask(old_mask)
    return Ran(code, out.getvalue(), err.getvalue())

def histo_subprocess(args:list, cwd=None, umask=None, env=None)->Ran:
    "`histo ARGS` as a user's shell runs it: a new process through the console script."
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '2'), **(env or {})}
    pre = (lambda: os.umask(umask)) if umask is not None else None
    r = subprocess.run(histo_cmd()+[str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, preexec_fn=pre)
    return Ran(r.returncode, r.stdout, r.stderr)

def histo(*args, cwd=None, ok=True, umask=None, proc=False)->Ran:
    "Run `histo ARGS` (in this process; `proc=True`: a subprocess); with `ok`, assert it succeeded."
    r = (histo_subprocess if proc else histo_in_process)(list(args), cwd=cwd, umask=umask)
    if ok: assert r.returncode==0, f"histo {' '.join(map(str,args))} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r

def one_line(r:Ran, *wanted, code:int=2)->str:
    "A failed command: status `code`, no traceback, one line on stderr holding every string of `wanted`."
    err = r.stderr.strip()
    assert r.returncode==code and 'Traceback' not in r.stderr and err.count('\n')==0, f"{r.returncode}\n{r.stderr[-3000:]}"
    for w in wanted: assert str(w) in err, f"{w!r} not in {err!r}"
    return err

def tiny_settings(folder, # a working folder: its settings.ini is (over)written
                  extra:str='', # more [DEFAULT] lines, e.g. "epochs = 1\n"
                 )->Path:
    "A working folder whose settings.ini asks for a tiny reference CNN (widths 8,16, dense 32): for tests of behaviour, not of fit."
    folder = Path(folder)
    (folder/'settings.ini').write_text("[DEFAULT]\nmodel_widths = (8,16)\nmodel_dense = 32\n" + extra)
    return folder

# --- session data: one synthetic set per layout, one tiny run ------------------------------------------------------
SETTINGS = "[DEFAULT]\ncrop = 32\nepochs = 1\nbs = 32\ntta = flip\ninfer_bs = 64\n[tiny]\nepochs = 2\n"

@pytest.fixture(scope='session')
def work(tmp_path_factory):
    "The session's working folder, as a user's checkout: a settings.ini (crop 32, 1 epoch) and the Kaggle-layout set `data/`."
    d = tmp_path_factory.mktemp('work')
    (d/'settings.ini').write_text(SETTINGS)
    histo('synth', d/'data', '--n-train', 240, '--n-test', 48, '--seed', 3, cwd=d)
    return d

@pytest.fixture(scope='session')
def kaggle_data(work):
    "240 labelled patches in train/ (192 train + 48 validation by default), 48 in test/ with test_labels.csv."
    return work/'data'

@pytest.fixture(scope='session')
def trained(work):
    "One tiny run (reference CNN, crop 32, 1 epoch, from ./settings.ini), trained by `histo train` with relative folders."
    r = histo('train', 'data', '--out', 'run', cwd=work)  # relative, as typed: checkpoints must not land in run/checkpoints/run/...
    return work/'run', r

@pytest.fixture(scope='session')
def run_dir(trained): return trained[0]

@pytest.fixture(scope='session')
def folder_data(tmp_path_factory):
    "ImageFolder layout: train/ and valid/, 20 images of each class in each."
    from histo_lib.synth import make_synth_folder
    return make_synth_folder(tmp_path_factory.mktemp('folder')/'data', n_per_class=20, seed=1)

@pytest.fixture(scope='session')
def h5_data(tmp_path_factory):
    "PCam HDF5 layout: train, valid and test splits of 80 patches each."
    from histo_lib.synth import make_synth_h5
    return make_synth_h5(tmp_path_factory.mktemp('h5')/'data', n=80, seed=1)
