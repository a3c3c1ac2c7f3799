"The project's own promises: README = index notebook, exported code = notebooks, the two commands, the pins."
import re, shutil, subprocess, sys, tomllib
from pathlib import Path
from conftest import ROOT

def test_readme_is_rendered_from_index():
    from nbconvert import MarkdownExporter
    body, _ = MarkdownExporter().from_filename(str(ROOT/'nbs'/'index.ipynb'))
    readme = (ROOT/'README.md').read_text()
    assert readme.strip()==body.strip(), "README.md is stale: run `./dev.sh readme` after editing nbs/index.ipynb"

def test_readme_first_two_commands_and_ci():
    cmds = re.findall(r'^(\./dev\.sh \w+)', (ROOT/'README.md').read_text(), re.M)
    assert cmds[:2]==['./dev.sh demo', './dev.sh test']
    ci = [l for l in (ROOT/'.ci'/'run').read_text().splitlines() if l.strip() and not l.startswith('#')]
    assert './dev.sh test' in ci   # CI runs the README's test command, word for word

def test_dev_sh_python_snippets_run(tmp_path):
    "The demo's inline Python (`\"$VENV/bin/python\" -c \"...\"` in dev.sh) runs against today's library: a moved name fails here, not in a user's first command."
    snippets = re.findall(r'"\$VENV/bin/python" -c "([^"]+)"', (ROOT/'dev.sh').read_text())
    assert len(snippets)>=2
    (tmp_path/'valid'/'0').mkdir(parents=True); (tmp_path/'valid'/'0'/'a.jpg').touch()
    for code in snippets:   # the settings read prints `data out`; the sample-submission writer gets a folder and a CSV path
        r = subprocess.run([sys.executable, '-c', code, str(tmp_path), str(tmp_path/'s.csv')], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode==0, f"dev.sh snippet failed: {code[:80]}...\n{r.stderr[-600:]}"
    assert (tmp_path/'s.csv').read_text().splitlines()==['id,label', 'a,0']

def test_pins_and_metadata():
    pp = tomllib.loads((ROOT/'pyproject.toml').read_text())
    assert pp['project']['scripts']['histo']=='histo_lib.cli:main'
    assert 'torch>=2.4' in pp['project']['dependencies'] and 'dev' in pp['project']['optional-dependencies']
    assert pp['tool']['nbdev']['lib_path']=='histo_lib'
    pins = (ROOT/'constraints.txt').read_text()
    assert 'torch==2.14.1' in pins and 'torchvision==0.29.1' in pins
    assert '-c constraints.txt' in (ROOT/'dev.sh').read_text()

def test_nbdev_export_leaves_no_diff(tmp_path):
    for p in ('nbs', 'histo_lib'): shutil.copytree(ROOT/p, tmp_path/p, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    shutil.copy(ROOT/'pyproject.toml', tmp_path)
    exe = Path(sys.executable).parent/'nbdev-export'
    subprocess.run([str(exe)], cwd=tmp_path, check=True, capture_output=True)
    stale = [p.name for p in (ROOT/'histo_lib').glob('*.py') if (tmp_path/'histo_lib'/p.name).read_text()!=p.read_text()]
    new = {p.name for p in (tmp_path/'histo_lib').glob('*.py')} - {p.name for p in (ROOT/'histo_lib').glob('*.py')}
    assert not stale and not new, f"histo_lib/ differs from the notebooks ({stale or new}): run `./dev.sh export`"

def test_notebooks_follow_the_house_style():
    import json
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        first = ''.join(cells[0]['source'])
        assert first.startswith('# ') and '\n> ' in first, f"{nb.name} must open with '# Title' and '> summary'"
        if nb.stem=='index': continue
        src = [''.join(c['source']) for c in cells if c['cell_type']=='code']
        assert 'nbdev_export()' in src[-1] and src[-1].startswith('#| hide'), f"{nb.name} must end with a hidden nbdev_export cell"
        if any(s.startswith('#| export') for s in src): assert any(s.startswith('#| default_exp ') for s in src), f"{nb.name} exports but names no module (#| default_exp)"
        assert not (bad := set(no_example(cells)) - set(no_example_yet.get(nb.stem, []))), f"{nb.name}: the export cells {sorted(bad)} have no example cell after them"

# The export cells (defining a function or class) that still have no example cell after them (issue 34): shrink it, never grow it.
# Empty since every export cell got its example: a new export cell comes with one.
no_example_yet = {}

def no_example(cells:list)->list:
    "Ids of `#| export` cells that define something and are followed by no example: the next code cell is another export or the last, hidden one."
    res = []
    for i,c in enumerate(cells):
        src = ''.join(c['source'])
        if c['cell_type']!='code' or not src.startswith('#| export'): continue
        if not any(l.startswith(('def ', 'class ', 'async def ')) for l in src.splitlines()): continue
        nxt = next((''.join(d['source']) for d in cells[i+1:] if d['cell_type']=='code'), '')
        if not nxt or nxt.startswith('#| export') or (nxt.startswith('#| hide') and 'nbdev_export' in nxt): res.append(c.get('id', str(i)))
    return res

def checked_recipe(ini, # a settings file
                   name:str, # one of its recipes
                   local:tuple=(), # keys of a checkout's settings.ini that are not run parameters either (data, out)
                  )->dict:
    "The recipe's run parameters after train's check (an unknown key or a wrong value raises), as `histo train --settings INI --recipe NAME` checks them."
    from histo_lib.settings import load_settings, check_params
    return check_params({k:v for k,v in load_settings(ini, name).items() if k not in ('tta','infer_bs','settings_file','recipe')+local}, where=name)

def test_recipes_check_as_train_parameters():
    "Every recipe (packaged settings.ini) passes train's parameter check, and cpu-best is the documented recipe."
    import configparser
    from histo_lib.settings import packaged_settings
    cp = configparser.ConfigParser(); cp.read(packaged_settings)
    for name in cp.sections(): checked_recipe(packaged_settings, name)
    p = checked_recipe(packaged_settings, 'cpu-best')
    assert (p['crop'], p['bf16'], p['channels_last'], p['patience'], p['ema'], p['stain_aug']) == (96, True, True, 0, 0.998, 0.1)

def test_bench_variants_check_as_train_parameters():
    "Every variant of bench/variants.ini passes train's parameter check, as `histo train --settings bench/variants.ini --recipe NAME` runs it, and every [screen...] budget names patches and epochs."
    import configparser
    ini = ROOT/'bench'/'variants.ini'
    cp = configparser.ConfigParser(); cp.read(ini)
    variants = [n for n in cp.sections() if not n.startswith('screen')]
    for name in variants: checked_recipe(ini, name)
    assert {'ref_e20_stain10', 'ref_e20_stain10_hue02', 'p4m_e16_stain10'} <= set(variants)   # the screen's baseline and the variants it sent on
    own = configparser.ConfigParser(default_section='-'); own.read(ini)   # each section's own keys, [DEFAULT]'s not mixed in
    assert all({'patches', 'epochs'} <= set(own[n]) for n in own.sections() if n.startswith('screen'))

def test_the_demo_settings():
    "The checkout's settings.ini: the demo trains on the real patches in the repository, and its [demo] recipe passes train's check."
    from histo_lib.settings import load_settings
    s = load_settings(ROOT/'settings.ini', 'demo')
    assert (s['data'], s['out']) == ('samples/pcam-mini', 'runs/demo') and (ROOT/s['data']/'valid'/'1').is_dir()
    p = checked_recipe(ROOT/'settings.ini', 'demo', local=('data', 'out'))
    assert (p['keep'], p['patience']) == ('last', 0)   # valid/ chooses nothing: the demo's AUC is a held-out figure
    assert load_settings(ROOT/'settings.ini')['crop'] == load_settings(ROOT/'histo_lib'/'settings.ini')['crop']   # [DEFAULT] is the packaged one's
    assert '--recipe demo' in (ROOT/'dev.sh').read_text()
    demo, best = load_settings(ROOT/'settings.ini', 'demo'), load_settings(ROOT/'histo_lib'/'settings.ini', 'cpu-best')
    local = ('data', 'out', 'settings_file', 'recipe', 'epochs')
    assert {k:v for k,v in demo.items() if k not in local} == {k:v for k,v in best.items() if k not in local}   # cpu-best, shortened: nothing else differs
