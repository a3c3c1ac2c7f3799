"""Build histo_lib's documentation site: `nbs/*.ipynb` (saved outputs, never executed) -> `_proc/docs` -> `_docs/`.

`./dev.sh docs` runs this. Steps, all at build time:
1. the notebooks, processed the nbdev way (hidden cells dropped, `#|` directives stripped, exported code replaced by
   its API entries) into `_proc/docs/nbs/`; the home page is `nbs/index.ipynb` (README's source);
2. tutorials: whole notebooks or sections cut from them, with their saved outputs and pictures;
3. an API page per module found in `histo_lib/*.py`: every name in its `__all__` with its signature, summary and each
   parameter's docments line (fastcore's `docments`, the information nbdev's `show_doc` shows);
4. the command line page from `histo --help` and each sub-command's `--help` (the argparse parser itself);
5. `sphinx-build` (myst-nb with `nb_execution_mode='off'`, sphinx-book-theme) into `_docs/`.
"""
import argparse, ast, copy, importlib, inspect, json, os, re, shutil, sys, time, warnings
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nbs, src, out = root/'nbs', root/'_proc'/'docs', root/'_docs'
repo_url = 'https://github.com/histo-lib/histo_lib'
sys.path.insert(0, str(root))   # document the package of this checkout, whatever the venv has installed

# ---------------------------------------------------------------- notebooks
def read_nb(fn:Path)->dict: return json.loads(Path(fn).read_text(encoding='utf-8'))
py_meta = dict(kernelspec=dict(name='python3', display_name='Python 3', language='python'),
               language_info=dict(name='python', pygments_lexer='ipython3'))
def write_nb(nb:dict, fn:Path):
    fn.parent.mkdir(parents=True, exist_ok=True)
    nb = {**nb, 'metadata': py_meta, 'nbformat': 4, 'nbformat_minor': 4,
          'cells': [{k: v for k, v in c.items() if k!='id'} for c in nb['cells']]}
    fn.write_text(json.dumps(nb, indent=1, ensure_ascii=False)+'\n', encoding='utf-8')

def cell_src(c:dict)->str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']
_dir_re = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*)$')

def directives(c:dict)->dict:
    "nbdev's `#| name value` lines at the top of a code cell."
    d = {}
    for l in cell_src(c).splitlines():
        m = _dir_re.match(l)
        if not m: break
        d[m.group(1).replace('-', '_')] = m.group(2).strip()
    return d

def strip_directives(s:str)->str:
    ls = s.splitlines(); i = 0
    while i < len(ls) and _dir_re.match(ls[i]): i += 1
    return '\n'.join(ls[i:])

def md_cell(s:str)->dict: return dict(cell_type='markdown', metadata={}, source=s)

def nb_module(nb:dict)->str|None:
    for c in nb['cells']:
        if c['cell_type']=='code' and 'default_exp' in directives(c): return directives(c)['default_exp'].split()[0]
    return None

def export_entries(s:str, mod:str)->str:
    "The API entries for the public names an exported cell defines: nbdev shows `show_doc` where the code was."
    try: tree = ast.parse(strip_directives(s))
    except SyntaxError: return ''
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    names += [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
    m = modules().get(mod)
    if m is None: return ''
    docd, consts = api_names(m)
    lines = []
    for n in names:
        if n in docd:
            o = getattr(m, n)
            lines.append(f"- **{{ref}}`{n} <{label(mod, n)}>`** ({'class' if inspect.isclass(o) else 'function'}): {md_inline(summary(o))}")
        elif n in consts: lines.append(f"- **{{ref}}`{n} <{label(mod, 'constants')}>`** (constant)")
    return '\n'.join(lines)

def process_nb(nb:dict, link_map:dict|None=None)->dict:
    "nbdev's doc processing, short: drop hidden cells and `nbdev_export`, strip directives, show API entries for exports."
    nb = copy.deepcopy(nb); mod = nb_module(nb); cells = []
    for c in nb['cells']:
        c.pop('id', None)
        if c['cell_type']=='markdown':
            s = cell_src(c)
            if link_map: s = fix_links(s, link_map)
            c['source'] = s; cells.append(c); continue
        if c['cell_type']!='code': continue
        d, s = directives(c), cell_src(c)
        if 'hide' in d or 'default_exp' in d or 'exporti' in d or 'nbdev_export(' in s or not strip_directives(s).strip(): continue
        if 'export' in d or 'exports' in d:
            e = export_entries(s, mod) if mod else ''
            if e: cells.append(md_cell(e))
            if 'exports' not in d: continue
        c['source'] = strip_directives(s)
        tags = []
        if d.get('echo', '').lower()=='false': tags.append('remove-input')
        if d.get('output', '').lower()=='false': tags.append('remove-output')
        c['metadata'] = {'tags': tags} if tags else {}
        cells.append(c)
    nb['cells'] = cells
    return nb

def fix_links(s:str, link_map:dict)->str:
    "Links written for GitHub (README, notebooks) pointed at the site's pages, or at the repository for other files."
    def sub(m):
        txt, url = m.group(1), m.group(2)
        if re.match(r'^[a-z]+:|^#', url): return m.group(0)
        base = url.split('#')[0]
        if Path(base).name in link_map: return f"[{txt}]({link_map[Path(base).name]})"
        return f"[{txt}]({repo_url}/blob/main/{base.removeprefix('../')})"
    return re.sub(r'(?<!!)\[([^\]]*)\]\(([^)\s]+)\)', sub, s)

def section(nb:dict, heading:str)->list:
    "The cells from the markdown heading that starts with `heading` up to the next heading of the same or a higher level."
    lvl = len(heading) - len(heading.lstrip('#')); cells, on = [], False
    for c in nb['cells']:
        s = cell_src(c).lstrip() if c['cell_type']=='markdown' else ''
        h = re.match(r'^(#+)\s', s)
        if on and h and len(h.group(1)) <= lvl: break
        if s.startswith(heading): on = True
        if on: cells.append(c)
    return cells

# ---------------------------------------------------------------- API pages
_mods = None
def modules()->dict:
    "Every module in `histo_lib/*.py` that documents names of its own, imported once."
    global _mods
    if _mods is None:
        _mods = {}
        for fn in sorted((root/'histo_lib').glob('*.py')):
            if fn.stem.startswith('_'): continue
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                try: _mods[fn.stem] = importlib.import_module(f'histo_lib.{fn.stem}')
                except Exception as e: errors.append(f"cannot import histo_lib.{fn.stem}: {e}")
    return _mods

def label(mod:str, name:str)->str: return f"api-{mod}-{name}".lower()
def summary(o)->str:
    d = inspect.getdoc(o) or ''
    return d.strip().split('\n\n')[0].replace('\n', ' ') if d else ''
def md_inline(s:str)->str: return s.replace('|', '\\|').replace('\n', ' ')

def fmt_anno(a)->str:
    if a is inspect.Parameter.empty or a is None: return ''
    return a if isinstance(a, str) else inspect.formatannotation(a)

def fmt_default(v, n:int=40)->str:
    if v is inspect.Parameter.empty: return ''
    r = repr(v)
    return r if len(r) <= n else r[:n-3]+'...'

def signature(o, name:str)->str|None:
    "`name(params) -> ret` with annotations as written (no quotes), one parameter a line when long."
    try: sig = inspect.signature(o)
    except (TypeError, ValueError): return None
    params = [p for p in sig.parameters.values() if p.name not in ('self', 'cls')]
    ps, kinds = [], [p.kind for p in params]
    for i, p in enumerate(params):
        if p.kind==p.KEYWORD_ONLY and (i==0 or kinds[i-1] not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)): ps.append('*')
        s = ('*' if p.kind==p.VAR_POSITIONAL else '**' if p.kind==p.VAR_KEYWORD else '') + p.name
        if p.annotation is not p.empty: s += f": {fmt_anno(p.annotation)}"
        if p.default is not p.empty: s += (' = ' if p.annotation is not p.empty else '=') + fmt_default(p.default, 60)
        ps.append(s)
        if p.kind==p.POSITIONAL_ONLY and (i+1==len(kinds) or kinds[i+1]!=p.POSITIONAL_ONLY): ps.append('/')
    ret = f" -> {fmt_anno(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ''
    one = f"{name}({', '.join(ps)}){ret}"
    if len(one) <= 90: return one
    pad = ' '*(len(name)+1)
    return f"{name}(" + (',\n'+pad).join(ps) + f"){ret}"

def sig_of(cls):
    """What a class's parameters are read from: its own `__init__`, or the class when a dataclass or a `NamedTuple`;
    None for a class whose init is inherited (a fastai `Callback` would list every event, an `Enum` its machinery)."""
    if '__init__' in cls.__dict__ and inspect.isfunction(cls.__dict__['__init__']): return cls.__dict__['__init__']
    if hasattr(cls, '__dataclass_fields__') or hasattr(cls, '_fields'): return cls
    return None

def param_docs(o)->dict:
    "docments of `o` (its `__init__` for a class), `{}` when it has none to read."
    from fastcore.docments import docments
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return docments(o, full=True, returns=True)
    except Exception: return {}

missing = {}   # 'mod.name' -> parameters without a docments line
errors = []    # what makes the build fail, said at the end

def param_table(o, qual:str)->list:
    """The parameter table nbdev's `show_doc` shows, from the same fastcore `docments`. fastcore's own `DocmentTbl` is
    not used: measured over the 309 API objects (2026-12-07), it renders nothing for 36 that have parameters but no
    docments (here they still get their types and defaults, and `missing` lists them for the build's check), shows a
    str default unquoted in 49 tables (the text 'none' and None read alike), and drops the `*`/`**` of the variadic
    parameters in 17. Its `|` escaping is right (no row breaks its columns)."""
    try: sig = inspect.signature(o)
    except (TypeError, ValueError): return []
    ps = [p for p in sig.parameters.values() if p.name not in ('self', 'cls')]
    docs = param_docs(o)
    rows, miss = [], []
    for p in ps:
        d = docs.get(p.name, {}) or {}
        doc = d.get('docment') or ''
        if not doc and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD): miss.append(p.name)
        name = ('*' if p.kind==p.VAR_POSITIONAL else '**' if p.kind==p.VAR_KEYWORD else '') + p.name
        rows.append(f"| `{name}` | {md_inline(fmt_anno(p.annotation))} | {('`'+md_inline(fmt_default(p.default))+'`') if p.default is not p.empty else ''} | {md_inline(doc)} |")
    ret = docs.get('return', {}) or {}
    if ret.get('docment') or sig.return_annotation is not sig.empty:
        rows.append(f"| **Returns** | {md_inline(fmt_anno(sig.return_annotation))} |  | {md_inline(ret.get('docment') or '')} |")
    if miss: missing[qual] = miss
    if not rows: return []
    return ['|  | **Type** | **Default** | **Details** |', '| --- | --- | --- | --- |', *rows, '']

def entry(mod:str, name:str, o, level:int=2, qual:str|None=None)->list:
    qual = qual or name
    kind = 'class' if inspect.isclass(o) else 'property' if isinstance(o, property) else 'function'
    out = [f"({label(mod, qual)})=", f"{'#'*level} {qual}", '']
    shown = qual.split('.')[-1] if level>2 else name
    so = sig_of(o) if kind=='class' else o
    sig = signature(so, shown) if kind!='property' and so is not None else None
    out += ['```python', f"{'class' if kind=='class' else 'def'} {sig}" if sig else shown, '```', '']
    s = summary(o.fget if kind=='property' else o)
    if s: out += [s, '']
    if kind!='property' and so is not None: out += param_table(so, f"{mod}.{qual}")
    if kind=='class':
        for k, v in o.__dict__.items():
            if k.startswith('_'): continue
            f = v.__func__ if isinstance(v, (classmethod, staticmethod)) else v
            if not (inspect.isfunction(f) or isinstance(f, property)) or not inspect.getdoc(f): continue
            out += entry(mod, name, f, level=3, qual=f"{name}.{k}")
    return out

def api_names(m)->tuple:
    "The functions and classes `m` defines and lists in `__all__`, and its constants there: `({name: obj}, {name: obj})`."
    objs = [(n, getattr(m, n)) for n in getattr(m, '__all__', []) if hasattr(m, n)]
    own = lambda o: getattr(o, '__module__', None) == m.__name__
    docd = {n: o for n, o in objs if (inspect.isclass(o) or inspect.isfunction(o)) and own(o)}
    try: code = inspect.getsource(m)
    except (OSError, TypeError): code = ''
    consts = {n: o for n, o in objs if not (inspect.isclass(o) or callable(o) or inspect.ismodule(o))
              and re.search(rf'^{re.escape(n)}\s*(:[^=]+)?=', code, re.M)}
    return docd, consts

def api_page(mod:str, m, nb_name:str|None)->str|None:
    docd, consts = api_names(m)
    docd, consts = list(docd.items()), list(consts.items())
    if not docd and not consts: return None
    doc = (inspect.getdoc(m) or '').strip()
    lines = [f"# histo_lib.{mod}", '']
    if doc: lines += [f"> {doc.splitlines()[0]}", '']
    if nb_name: lines += [f"Source notebook: [{nb_name}](../nbs/{nb_name}.ipynb), with the prose and the examples.", '']
    lines += ['```python', f"from histo_lib.{mod} import *", '```', '']
    for n, o in docd: lines += entry(mod, n, o)
    if consts:
        lines += [f"({label(mod, 'constants')})=", '## Constants', '', '| Name | Type | Value |', '| --- | --- | --- |']
        for n, o in consts:
            r = repr(o); r = r if len(r) <= 80 else r[:77]+'...'
            lines.append(f"| `{n}` | {type(o).__name__} | `{md_inline(r).replace('`', '')}` |")
        lines.append('')
    return '\n'.join(lines)

# ---------------------------------------------------------------- command line
def cli_page()->str:
    os.environ['COLUMNS'] = '88'   # argparse wraps to this: the width of the page's code blocks
    from histo_lib.args import build_parser
    ap = build_parser()
    subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    lines = ['# histo: the command line', '',
             '> `histo`, installed with the package. Generated from `histo --help` and each sub-command\'s `--help` when '
             'the site is built.', '', '```text', '$ histo --help', ap.format_help().rstrip(), '```', '']
    for name, p in subs.choices.items():
        lines += [f"(cli-{name})=", f"## histo {name}", '', '```text', f"$ histo {name} --help", p.format_help().rstrip(), '```', '']
    return '\n'.join(lines)

# ---------------------------------------------------------------- the site
def nb_title(nb:dict, default:str)->str:
    for c in nb['cells']:
        m = re.match(r'^#\s+(.+)', cell_src(c).lstrip()) if c['cell_type']=='markdown' else None
        if m: return m.group(1).strip()
    return default

def first(pattern:str, pick=None)->Path|None:
    fns = sorted(nbs.glob(pattern))
    if pick: fns = [f for f in fns if pick(read_nb(f))] or fns
    return fns[-1] if fns else None

def has_image(nb:dict)->bool:
    return any(k.startswith('image/') for c in nb['cells'] for o in c.get('outputs', []) for k in o.get('data', {}))

def tutorial_nb(title:str, intro:str, parts:list, link_map:dict)->dict:
    "A tutorial notebook: a title and intro, then sections cut from notebooks (saved outputs kept)."
    cells = [md_cell(f"# {title}\n\n{intro.strip()}")]
    for fn, heading in parts:
        if fn is None: continue
        nb = read_nb(fn)
        got = section(nb, heading) if heading else nb['cells']
        if not heading and got and got[0]['cell_type']=='markdown':   # a whole notebook: the tutorial's title is its title
            got = [{**got[0], 'source': re.sub(r'^\s*#\s[^\n]*\n?', '', cell_src(got[0]), count=1)}] + got[1:]
        if not got: errors.append(f"section {heading!r} not found in {fn.name}"); continue
        cells += process_nb({**nb, 'cells': got}, link_map)['cells']
        cells.append(md_cell("*From the [home page](../index.ipynb) (the README).*" if fn.stem=='index'
                             else f"*From the notebook [{fn.stem}](../nbs/{fn.stem}.ipynb).*"))
    return dict(nbformat=4, nbformat_minor=5, metadata={}, cells=cells)

def generate():
    t0 = time.time()
    if src.exists(): shutil.rmtree(src)
    (src/'api').mkdir(parents=True); (src/'tutorials').mkdir(); (src/'nbs').mkdir()
    pages = Path(__file__).parent/'pages'
    nb_fns = [f for f in sorted(nbs.glob('*.ipynb')) if f.stem != 'index']
    # links as written in README / notebooks -> the site's pages
    link_map = {f.name: f"/nbs/{f.stem}.ipynb" for f in nb_fns}
    link_map_rel = {k: '..'+v for k, v in link_map.items()}
    link_map_idx = {k: v.lstrip('/') for k, v in link_map.items()}
    # tutorials, in reading order; each names where its text and pictures come from
    index = nbs/'index.ipynb'
    slide_nb = first('10*.ipynb', lambda nb: has_image(nb) and any('predict_slides(' in cell_src(c) for c in nb['cells']))
    tuts = [('pcam', 'The fastai way on real PCam patches', [(first('20_pcam*.ipynb'), None)]),
            ('kaggle', 'The Kaggle competition in a kernel', [(index, '## Submitting from a Kaggle kernel'), (first('12_kaggle*.ipynb'), "## The kernel's situation")]),
            ('transfer', 'Transfer learning from a local timm checkpoint', [(first('03_models*.ipynb'), "## One factory: timm's registry")]),
            ('slides', 'Whole slides and their heat maps', [(index, '## Whole slides'), (slide_nb, '## The whole thing')]),
            ('camelyon', 'From annotated slides to a Camelyon16 score', [(first('10f_*.ipynb'), None)]),
            ('scaling', 'Scaling out: several GPUs or processes', [(index, '## Scaling out'), (first('04a_*.ipynb'), '## When to scale out')])]
    tut_docs = []
    for slug, title, parts in tuts:
        intro = (pages/f'{slug}.md').read_text(encoding='utf-8') if (pages/f'{slug}.md').exists() else ''
        write_nb(tutorial_nb(title, intro, parts, link_map_rel), src/'tutorials'/f'{slug}.ipynb')
        tut_docs.append(f'tutorials/{slug}')
    # the notebooks themselves
    nb_docs = []
    mod_nb = {}
    for f in nb_fns:
        try: nb = read_nb(f)
        except (FileNotFoundError, json.JSONDecodeError) as e: errors.append(f"cannot read {f.name}: {e}"); continue
        write_nb(process_nb(nb, link_map_rel), src/'nbs'/f.name); nb_docs.append(f'nbs/{f.stem}')
        mod_nb[nb_module(nb)] = f.stem
    # API pages, one per module
    api_docs = []
    for mod, m in modules().items():
        page = api_page(mod, m, mod_nb.get(mod))
        if page: (src/'api'/f'{mod}.md').write_text(page, encoding='utf-8'); api_docs.append(f'api/{mod}')
    (src/'cli.md').write_text(cli_page(), encoding='utf-8')
    # home page: README's source, with the site's table of contents
    home = process_nb(read_nb(index), link_map_idx)
    toc = lambda cap, docs: f"```{{toctree}}\n:caption: {cap}\n:maxdepth: 1\n:hidden:\n\n" + '\n'.join(docs) + "\n```\n"
    home['cells'].append(md_cell(toc('Tutorials', tut_docs) + '\n' + toc('Notebooks', nb_docs) + '\n'
                                 + toc('API reference', api_docs) + '\n' + toc('Command line', ['cli'])))
    write_nb(home, src/'index.ipynb')
    if missing:
        print('docs: parameters without a docments line:', file=sys.stderr)
        for k, v in missing.items(): print(f"  {k}: {', '.join(v)}", file=sys.stderr)
    print(f"docs: generated {len(tut_docs)} tutorials, {len(nb_docs)} notebooks, {len(api_docs)} API pages in {time.time()-t0:.1f} s")

def build():
    from sphinx.cmd.build import build_main
    t0 = time.time()
    rc = build_main(['-b', 'html', '-q', '-c', str(Path(__file__).parent), '-d', str(root/'_proc'/'doctrees'), str(src), str(out)])
    print(f"docs: sphinx-build finished in {time.time()-t0:.1f} s (exit {rc}) -> {out}/index.html")
    return rc

if __name__ == '__main__':
    generate()
    rc = build()
    for e in errors: print(f"docs: error: {e}", file=sys.stderr)
    sys.exit(rc or (1 if errors else 0))
