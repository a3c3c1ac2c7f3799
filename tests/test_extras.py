"The base install (no extras): every command that needs no extra works, and each extra's command names its extra in one line."
import json, subprocess, sys, os
from conftest import tiny_settings

# every optional package of pyproject.toml's extras: onnx, extras (grad-cam, scikit-image), slide, dist (the slide extra's starlette and
# uvicorn are not hidden: fastprogress, a base dependency through fastai, imports them through python-fasthtml)
OPTIONAL = ('onnx', 'onnxruntime', 'pytorch_grad_cam', 'skimage', 'openslide', 'tiffslide', 'accelerate')

# One Python process runs the commands with the optional packages made unimportable (None in sys.modules), so the
# test sees what a base install sees without building a venv; it reports each command's exit status and output.
RUNNER = f"""
import sys, io, json, contextlib
for m in {OPTIONAL!r}: sys.modules[m] = None
from histo_lib.cli import main
res = []
for argv in json.loads(sys.argv[1]):
    out, err, rc = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main(argv)
        except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1
    res.append(dict(argv=argv, rc=rc, out=out.getvalue(), err=err.getvalue()))
try:  # then everything a notebook imports, as `from histo_lib.all import *`
    exec('from histo_lib.all import *', ns := {{}})
    res.append(dict(argv='all', rc=0, out=' '.join([ns['histo_dls'].__name__, ns['load_run'].__name__]), err=''))
except Exception as e: res.append(dict(argv='all', rc=1, out='', err=f"{{type(e).__name__}}: {{e}}"))
print(json.dumps(res))
"""

def without_extras(cmds, cwd):
    "Run each `histo` command (a list of arguments) in one process without the optional packages; their results."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HISTO_THREADS': '1'}
    r = subprocess.run([sys.executable, '-c', RUNNER, json.dumps([[str(a) for a in c] for c in cmds])],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert r.returncode==0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def one_line(r, *words):
    err = r['err'].strip()
    assert r['rc']==2 and err.count('\n')==0 and 'Traceback' not in err, r
    for w in words: assert w in err, (w, err)

def test_base_install_runs_and_each_extra_is_named(tmp_path):
    tiny_settings(tmp_path)
    d, run, sl = tmp_path/'d', tmp_path/'r', tmp_path/'sl'
    res = without_extras([['--help'], ['train', '--help'],
                          ['synth', d, '--n-train', 96, '--n-test', 16, '--seed', 1],
                          ['info', d],
                          ['train', d, '--out', run, '--epochs', 1, '--crop', 32, '--bs', 16, '--patience', 0],
                          ['predict', run, d, '--out', tmp_path/'s.csv', '--tta', 'flip'],
                          ['synth', sl, '--format', 'slide', '--seed', 2],
                          # each extra's command: one line that names the extra and how to install it
                          ['predict', run, d, '--out', tmp_path/'o.csv', '--backend', 'onnx'],
                          ['explain', run, d, '--out', tmp_path/'x.png', '--n', 2, '--split', 'train'],
                          ['slide', run, sl/'slide.tif', '--out', tmp_path/'so'],
                          ['view', tmp_path/'vo', '--port', 0],
                          ['train', d, '--out', tmp_path/'r2', '--epochs', 1, '--crop', 32, '--nproc', 2],
                          ['predict', run, d, '--out', tmp_path/'p2.csv', '--nproc', 2]], tmp_path)
    ok, extras, everything = res[:7], res[7:-1], res[-1]
    for r in ok: assert r['rc']==0, r
    assert 'COMMAND' in ok[0]['out'] and '--lr-mult' in ok[1]['out']
    assert 'Saved' in ok[4]['out'] and (run/'model.safetensors').exists()
    lines = (tmp_path/'s.csv').read_text().splitlines()
    assert lines[0]=='id,label' and len(lines)==17 and all(0<=float(l.split(',')[1])<=1 for l in lines[1:])
    assert (sl/'slide.tif').stat().st_size>0 and (sl/'truth.csv').exists()
    for r, extra in zip(extras, ['onnx', 'extras', 'slide', 'slide', 'dist', 'dist']):
        one_line(r, f"pip install 'histo_lib[{extra}]'")
    assert not (tmp_path/'o.csv').exists() and not (tmp_path/'x.png').exists() and not (tmp_path/'r2').exists()
    assert everything['rc']==0 and everything['out'].split()==['histo_dls', 'load_run'], everything  # `from histo_lib.all import *` too
