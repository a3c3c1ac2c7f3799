"""The experiment runner: train a recipe variant over several seeds with `histo train`, score each run with dihedral TTA
on valid/ (whole, and its fixed halves A/B), on test/ (PCam test-split patches, never trained on) and on a stain-shifted
valid/, and keep every row ever measured in bench/recipe_rows.json, rendered as one table per variant (mean ± sd over
seeds) into the `recipe` section of bench/RESULTS.md.

    python bench/recipe.py ref_e20_stain05 --seeds 42 43 44        # train + score a variant of bench/variants.ini
    python bench/recipe.py cpu-best --seeds 42 43 44               # a packaged recipe (not a section of variants.ini)
    python bench/recipe.py --score RUN [--variant NAME]            # score a finished run folder and add its row
    python bench/recipe.py --score RUN1 RUN2 --variant ens2_NAME   # several runs: their mean probability (an ensemble)
    python bench/recipe.py --score RUN --variant adabn_NAME --adabn   # BatchNorm statistics of each scored set (AdaBN)
    python bench/recipe.py --table                                 # re-render the table from the rows
    python bench/recipe.py --list                                  # the variants of bench/variants.ini
    python bench/recipe.py ref_e20_stain10 --seeds 42 43 44 --screen   # the screening budget of [screen] (float32-only CPUs)
    python bench/recipe.py ref_e20 --seeds 42 43 44 --screen screen_p4000_e10   # another budget: a [screen...] section

Training runs `/usr/bin/time -v python -m histo_lib.cli train DATA --recipe NAME --seed N --out RUNS/NAME_sN` (with
`--settings bench/variants.ini` for its sections) in a folder holding no settings.ini, so the row's wall time and peak
RSS are those of the command a user runs. HISTO_PCAM moves the data folder (default ../shared/data/pcam-sample),
HISTO_RECIPE_RUNS the run folders (default $HISTO_CACHE/recipes) and HISTO_RECIPE_ROWS the rows file.

`--screen [SECTION]` trains at the screening budget of a `[screen...]` section of bench/variants.ini (default `[screen]`;
issue 30 item 1): its `patches` training patches (a stratified sample, the same for every variant and seed) for its
`epochs`, with the model and augmentations of the variant; scoring is unchanged. The row's variant is `SECTION:NAME`.

The shifted valid/ (`shifted`): every valid/ patch, in `load_items` order, re-stained by the library's Tellez-style H&E
jitter (`stain.hed_jitter`) at strength SHIFT_STRENGTH with a CPU generator seeded SHIFT_SEED, drawn in chunks of
SHIFT_CHUNK patches: per patch and stain (H, E, D) a scale U(1-s, 1+s) and a shift U(-s, s) in optical density, rounded
back to uint8. It needs no extra data; a recipe trained with `stain_aug` sees the same kind of jitter (at its own strength).
"""
from __future__ import annotations
import argparse, functools, json, os, re, subprocess, sys, time, warnings
from configparser import ConfigParser
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings('ignore')
from _results import BENCH, PCAM, write_section, device_name, md_table
from sklearn.metrics import roc_auc_score
from histo_lib.core import HistoError
from histo_lib.settings import load_settings, packaged_settings
from histo_lib.runtime import set_threads
from histo_lib.patches import load_items, stratified_sample
from histo_lib.cache import decode_items, cache_dir
from histo_lib.stain import hed_jitter
from histo_lib.train import model_kwargs_of
from histo_lib.settings import run_params, check_params
from histo_lib.models import load_artefact
from histo_lib.infer import Predictor

ROWS = Path(os.environ.get('HISTO_RECIPE_ROWS') or BENCH/'recipe_rows.json')
VARIANTS = Path(os.environ.get('HISTO_RECIPE_VARIANTS') or BENCH/'variants.ini').resolve()  # bench/gpu.sh's smoke stage: a 1-epoch copy
HALF_SEED = 0  # fixed once (issue 16): never change it, or the old rows' halves stop being comparable
SHIFT_STRENGTH, SHIFT_SEED, SHIFT_CHUNK = 0.1, 0, 500  # the shifted valid/: never change them, or its column stops being one yardstick
METRICS = (('tta_auc', 'valid/'), ('A_tta_auc', 'half A'), ('B_tta_auc', 'half B'), ('test_tta_auc', 'test/'), ('shift_tta_auc', 'shifted valid/'))

def runs_dir()->Path: return Path(os.environ.get('HISTO_RECIPE_RUNS') or cache_dir()/'recipes')

def half_a(items:pd.DataFrame)->np.ndarray:
    "True for the items of valid/ in half A, False for half B: fixed, stratified, by file name (issue 16's halves)."
    y = items['label'].values
    order = np.argsort(items['src'].map(lambda p: Path(str(p)).name).values, kind='stable')  # by file name: independent of listing order
    rng, half = np.random.default_rng(HALF_SEED), np.zeros(len(y), bool)
    for c in (0, 1):
        idx = order[y[order]==c]
        half[rng.permutation(idx)[:len(idx)//2]] = True
    return half

def shifted(x:np.ndarray, # uint8 NHWC pixels
            strength:float=SHIFT_STRENGTH, seed:int=SHIFT_SEED, chunk:int=SHIFT_CHUNK)->np.ndarray:
    "`x` re-stained by a fixed, seeded H&E perturbation (see the module's docstring): the shifted yardstick."
    g, out = torch.Generator().manual_seed(seed), np.empty_like(x)
    for s in range(0, len(x), chunk):
        xb = torch.from_numpy(np.ascontiguousarray(x[s:s+chunk])).permute(0, 3, 1, 2).float().div_(255)
        out[s:s+chunk] = hed_jitter(xb, strength, g).mul_(255).round_().byte().permute(0, 2, 3, 1).numpy()
    return out

def pixels(split:str)->tuple:
    "Decoded uint8 pixels and labels of a split of the sample."
    x, items = decode_items(load_items(PCAM, split), progress=False)
    return np.asarray(x), items

def eval_sets()->dict:
    "name -> (pixels, labels, half A mask or None): valid/, test/ (when the sample has it) and the shifted valid/."
    xv, iv = pixels('valid'); yv = iv['label'].values
    res = {'valid': (xv, yv, half_a(iv)), 'shift': (shifted(xv), yv, None)}
    if (PCAM/'test').is_dir(): xt, it = pixels('test'); res['test'] = (xt, it['label'].values, None)
    return res

def auc(y, p)->float: return round(float(roc_auc_score(y, p)), 4)

def adapted(run:Path, x:np.ndarray, bs:int=128)->tuple:
    "A run's `(model, cfg)` with its BatchNorm statistics recomputed on the pixels `x` over the 8 dihedral views (AdaBN; no labels)."
    model, cfg = load_artefact(run)
    pred = Predictor([(model, cfg)], tta='dihedral', bs=bs, prefetch=False, backend='torch', device='cpu')
    bns = [m for m in pred.models[0].modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns: m.reset_running_stats(); m.momentum = None; m.train()  # momentum None: a plain cumulative average
    pred(x, progress=False)
    return pred.models[0].eval(), cfg

def score_runs(runs:list, # run folders; several: their mean probability
               sets:dict, # from `eval_sets`
               bs:int=128,
               adabn:bool=False, # recompute each model's BatchNorm statistics on each scored set first (AdaBN)
              )->dict:
    "AUC with dihedral TTA on valid/ (and its halves), test/ and the shifted valid/, through one batch `Predictor`."
    pred, res = Predictor([str(r) for r in runs], tta='dihedral', bs=bs, prefetch=False), {}
    for name, (x, y, half) in sets.items():
        if adabn: pred = Predictor([adapted(r, x, bs) for r in runs], tta='dihedral', bs=bs, prefetch=False)
        t = time.time(); p = pred(x, progress=False)
        key = {'valid': 'tta_auc', 'test': 'test_tta_auc', 'shift': 'shift_tta_auc'}[name]
        res[key] = auc(y, p)
        if half is not None: res['A_tta_auc'], res['B_tta_auc'] = auc(y[half], p[half]), auc(y[~half], p[~half])
        print(f"  {name:6} {len(x):5} patches: AUC {res[key]:.4f} ({time.time()-t:.0f} s)", flush=True)
    return res

@functools.cache
def base_settings()->dict:
    "cpu-best as issue 16 left it: the [DEFAULT] of bench/variants.ini, which the 'changes' column is read against."
    return {**{k:v['default'] for k,v in run_params().items()}, **recipe_settings(load_settings(VARIANTS))}

def recipe_settings(s:dict)->dict:
    "Run parameters (values) with the `model_*` keys folded into `model_kwargs`, from settings text or a run's record."
    rp = run_params()
    p = check_params({k:v for k,v in s.items() if k in rp and k not in ('data', 'out') and v is not None})
    return {**p, 'model_kwargs': {**model_kwargs_of(s), **(s.get('model_kwargs') or {})}}

SHOWN = ('arch', 'crop', 'bs', 'epochs', 'lr', 'ema', 'keep', 'lighting', 'hue', 'label_smoothing', 'shift', 'stain_aug', 'stain_norm',
         'mixup', 'wd', 'bf16', 'channels_last', 'drop_outliers', 'refit', 'weights')

def changes(s:dict, n_train:int=20000)->str:
    "What the run parameters `s` change from `base_settings`, briefly (`k=v`, comma-separated; 'none' when nothing)."
    b = base_settings(); out = [f'n_train={n_train}'] if n_train!=20000 else []
    out += [f'{k}={s[k]}' for k in SHOWN if k in s and str(s[k])!=str(b.get(k))]
    mk, bm = s.get('model_kwargs') or {}, b['model_kwargs']
    out += [f'{k}={tuple(v) if isinstance(v, list) else v}' for k,v in mk.items() if str(v).replace('[', '(').replace(']', ')')!=str(bm.get(k))]
    out += [f'{k}=default' for k in bm if mk and k not in mk]
    return ', '.join(out).replace('bf16=False, channels_last=False', 'fp32').replace('ema=0.0', 'no EMA') or 'none'

def time_log(fn)->dict:
    "Wall seconds and peak RSS (GB) from a `/usr/bin/time -v` log, when it holds them."
    txt, res = Path(fn).read_text(errors='ignore'), {}
    if m := re.search(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)', txt):
        res['process_wall_s'] = round(sum(float(v)*60**i for i,v in enumerate(reversed(m.group(1).split(':')))))
    if m := re.search(r'Maximum resident set size \(kbytes\): (\d+)', txt): res['peak_rss_gb'] = round(int(m.group(1))/2**20, 2)
    return res

def score(runs:list, # run folders (several: an ensemble)
          variant:str|None=None, # the variant's name; None: the run's recorded one, else its folder name
          sets:dict|None=None, log:str|None=None,
          adabn:bool=False, # BatchNorm statistics recomputed on each scored set (AdaBN): the row's variant should say so
         )->dict:
    "A row for finished run(s): settings, seed, machine, wall time and the AUCs of `score_runs`."
    runs = [Path(r) for r in runs]
    for r in runs:
        if not (r/'model.json').is_file(): raise HistoError(f"{r} holds no model.json: pass a run folder that `histo train` wrote.")
    cfgs = [json.loads((r/'model.json').read_text()) for r in runs]
    tr = cfgs[0]['train']; meta = runs[0]/'bench.json'
    meta = json.loads(meta.read_text()) if meta.is_file() else {}
    s = recipe_settings({**tr, 'model_kwargs': cfgs[0].get('model_kwargs')})
    row = dict(name=' + '.join(r.name for r in runs), variant=variant or meta.get('variant') or runs[0].name,
               seed=cfgs[0]['train'].get('seed') if len(cfgs)==1 else '+'.join(str(c['train'].get('seed')) for c in cfgs), machine=meta.get('machine') or device_name(),
               n_train=tr.get('n_train', 0), changes=changes(s, tr.get('n_train', 20000)) + (' (mean of the runs)' if len(runs)>1 else '') + (', AdaBN at prediction' if adabn else ''),
               settings={k:str(v) for k,v in s.items()}, train_s=round(sum(c['train']['seconds'] for c in cfgs)),
               params=cfgs[0].get('n_params'), date=time.strftime('%Y-%m-%d', time.gmtime()))
    if log or meta.get('time_log'): row.update(time_log(log or meta['time_log']))
    if meta.get('threads'): row['threads'] = meta['threads']
    print(f"scoring {row['name']} ({row['variant']}, seed {row['seed']})", flush=True)
    row.update(score_runs(runs, sets if sets is not None else eval_sets(), adabn=adabn))
    row['load'] = round(os.getloadavg()[0], 1)
    return row

SCREEN = 'screen'  # the sections of bench/variants.ini named screen... hold screening budgets, not variants

def variants_ini(defaults:bool=True, # False: [DEFAULT]'s keys are not inherited (a budget must name its own)
                )->ConfigParser:
    "bench/variants.ini, read afresh (sections may be added while runs go on)."
    cp = ConfigParser(interpolation=None, **({} if defaults else dict(default_section='no default'))); cp.read(VARIANTS); return cp

def screen_budget(section:str=SCREEN)->dict:
    "A `[screen...]` section of bench/variants.ini: `patches` (training patches kept) and `epochs`."
    cp = variants_ini(defaults=False)
    budgets = [n for n in cp.sections() if n.startswith(SCREEN)]
    if section not in budgets: sys.exit(f"'{section}' is no screening budget of {VARIANTS}: name one of its [screen...] sections ({', '.join(budgets)}).")
    return dict(patches=cp.getint(section, 'patches'), epochs=cp.getint(section, 'epochs'))

def screen_data(n:int, data:Path=PCAM)->Path:
    "A pcam-sample-shaped folder whose train/ links a stratified sample of `n` of `data`'s training patches (seed 0) and whose valid/ is `data`'s."
    out = runs_dir()/f'screen_data_{n}'
    if (out/'valid').exists(): return out
    items = load_items(data, 'train'); keep = items.iloc[stratified_sample(n, items['label'].values, 0)]
    tmp = out.with_name(out.name+'.tmp')
    for src,lbl in zip(keep['src'], keep['label']):
        (tmp/'train'/str(int(lbl))).mkdir(parents=True, exist_ok=True)
        (tmp/'train'/str(int(lbl))/Path(src).name).symlink_to(Path(src).resolve())
    (tmp/'valid').symlink_to((data/'valid').resolve())
    os.replace(tmp, out)
    return out

def train_run(variant:str, seed:int, threads:int|None, data:Path=PCAM,
              screen:str|None=None, # a [screen...] section: train at its budget
             )->Path:
    "Train `variant` with `seed` through the command line, timed by `/usr/bin/time -v`; the run folder."
    budget = screen_budget(screen) if screen else None
    if budget: data = screen_data(budget['patches'], data)
    out = runs_dir()/f"{screen+'_' if screen else ''}{variant}_s{seed}"; out.parent.mkdir(parents=True, exist_ok=True)
    in_ini = variant in _ini_sections()
    cmd = (['/usr/bin/time', '-v'] if Path('/usr/bin/time').exists() else []) + [sys.executable, '-m', 'histo_lib.cli', 'train', str(data), '--recipe', variant, '--seed', str(seed),
           '--out', str(out)] + (['--settings', str(VARIANTS)] if in_ini else []) + (['--epochs', str(budget['epochs'])] if budget else [])
    env = {**os.environ, **({'OMP_NUM_THREADS': str(threads), 'HISTO_THREADS': str(threads)} if threads else {})}
    log = out.parent/f'{out.name}.log'
    print(' '.join(cmd), f'> {log}', flush=True)
    with open(log, 'w') as f: rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=out.parent).returncode
    if rc: sys.exit(f"Training {variant} seed {seed} failed (exit {rc}); see {log}.")
    (out/'bench.json').write_text(json.dumps(dict(variant=variant, seed=seed, threads=threads, machine=device_name(), time_log=str(log))))
    return out

def _ini_sections()->list: return [n for n in variants_ini().sections() if not n.startswith(SCREEN)]

def row_key(r:dict)->tuple:
    "What makes a row the same run again: its name, variant, seed, machine and changes (a packaged recipe that changed, or another machine, is another run)."
    return r['name'], r.get('variant'), str(r.get('seed')), short_machine(r.get('machine', '')), r.get('changes', '-')

def add_row(row:dict):
    "Add `row` to the rows file (replacing the row with its `row_key`), re-read first: others may write too."
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else []
    rows = [r for r in rows if row_key(r)!=row_key(row)] + [row]
    tmp = ROWS.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(rows, indent=1)); os.replace(tmp, ROWS)

def mean_sd(vals:list)->str:
    "'0.9512' for one value, '0.9512 ± 0.0031' (sample sd) for several, '-' for none."
    if not vals: return '-'
    return f'{vals[0]:.4f}' if len(vals)==1 else f'{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}'

def short_machine(m:str)->str:
    "A table-sized machine name: the GPU's model, else the CPU's vendor and family."
    if m=='cpu' or not m: return 'CPU'
    m = re.sub(r'\((R|TM)\)|NVIDIA |Processor|CPU|@ *[\d.]+ *GHz', '', m).replace('(AVX512-BF16)', 'bf16').replace('(AMX)', 'AMX').replace('(float32)', 'float32')
    return re.sub(r'\s+', ' ', m).strip()[:22]

def table(rows:list)->str:
    """One line per (variant, machine, changes): seeds, wall minutes and mean ± sd over seeds of each AUC (a seed's latest row counts).
    The changes are part of the key, so a packaged recipe that changes (cpu-best) starts a line of its own."""
    lines = []
    for (v, m, _), seeds in by_seed(rows).items():
        rs = list(seeds.values())
        wall = [r.get('process_wall_s', r.get('train_s')) for r in rs if r.get('process_wall_s', r.get('train_s'))]
        lines.append([v, m, rs[-1].get('changes', '-')[:90], ' '.join(seeds), f"{np.mean(wall)/60:.0f}" if wall else '-',
                      *[mean_sd(metric(seeds, k)) for k,_ in METRICS]])
    return md_table(['variant', 'machine', 'changes from issue-16 cpu-best', 'seeds', 'wall min', *[t for _,t in METRICS]], lines)

PROTOCOL = """## Every recipe variant (`recipe`)

One line per variant, machine and settings from every row of `bench/recipe_rows.json` (a row: one trained run, or the mean of runs); AUCs are **mean ± sd over seeds** \
(a seed's latest row counts), all with the default dihedral TTA. **valid/**: the 3,000 valid/ patches (other slides than train/); **half A / half B**: issue 16's \
fixed stratified halves of it (A chose, B reported; they share slides); **test/**: the 1,000 PCam test-split patches (other slides again, never trained on); \
**shifted valid/**: valid/ re-stained by a fixed, seeded H&E perturbation (`recipe.shifted`: `stain.hed_jitter` at strength 0.1 with generator seed 0 in chunks \
of 500, per patch and stain a scale U(0.9, 1.1) and an optical-density shift U(-0.1, 0.1)). '-': not measured (rows older than test/ and the shifted set, or \
probes that scored only the halves). **wall min**: `/usr/bin/time -v` of the whole `histo train` when recorded, else `train()`'s seconds (one thread when two \
runs shared the cores). **changes**: keys that differ from [DEFAULT] of `bench/variants.ini` (issue 16's cpu-best); pre-issue-16 rows differ in many. Issue \
30's rule: a variant is better when, over at least three seeds, its test/ mean beats the baseline's by more than the baseline's seed-sd and it is no worse on \
valid/ nor the shifted valid/ by more than one seed-sd. **test/ chose cpu-best's stain jitter (issue 30), so it no longer scores cpu-best blind.**
"""

def metric(seeds:dict, # a group's rows by seed (`by_seed`)
           key:str, # a row key of METRICS
          )->list:
    "The group's values of `key`, from the seeds that have one."
    return [r[key] for r in seeds.values() if r.get(key) is not None]

def by_seed(rows:list)->dict:
    "Rows grouped by (variant, machine, changes), each group's rows by seed (a seed's latest row counts)."
    groups = {}
    for r in rows: groups.setdefault((r['variant'], short_machine(r.get('machine', '')), r.get('changes', '-')), {})[str(r.get('seed'))] = r
    return groups

def full_changes(screen_changes:str)->str:
    "The changes of the full run a screening run stands for: its own without the budget's `n_train` and `epochs`."
    return ', '.join(c for c in screen_changes.split(', ') if not c.startswith(('n_train=', 'epochs='))) or 'none'

SCREEN_BASE = 'ref_e20_stain10'  # cpu-best's settings as a section of variants.ini: the screened baseline each screened variant is held against
SCREEN_SDS = 2  # a screened variant is dropped when its valid/ or shifted mean falls this many of the screened baseline's seed-sds below the baseline's

def screen_verdict(g:dict, # a screened group's rows by seed
                   base:dict|None, # the screened baseline's of the same budget and machine
                  )->str:
    "'drop (valid/, shifted)': where `g`'s mean falls more than `SCREEN_SDS` of `base`'s seed-sds below `base`'s; else 'full run next'; '-' under 3 seeds a side."
    if g is base: return 'baseline'
    if base is None or len(base)<3 or len(g)<3: return '-'
    lost = [t.split()[0] for k,t in METRICS if k in ('tta_auc', 'shift_tta_auc')
            and np.mean(metric(g, k)) < np.mean(metric(base, k)) - SCREEN_SDS*np.std(metric(base, k), ddof=1)]
    return f"drop ({', '.join(lost)})" if lost else 'full run next'

def screen_table(rows:list)->str:
    """Each screened variant (per budget and machine) beside the full runs of the same settings (the group with the most seeds
    scored on test/; '-' where none ran), mean ± sd of each metric, its `screen_verdict`, and per budget and machine the Spearman
    correlation of the screened means with the full ones over the variants that have both."""
    from scipy.stats import spearmanr
    groups, shown = by_seed(rows), [(k,t) for k,t in METRICS if 'half' not in t]
    n_test = lambda g: len(metric(g, 'test_tta_auc'))
    full = {}
    for (v, _, ch), g in groups.items():
        if ':' not in v and n_test(g)>=3 and n_test(g)>n_test(full.get(ch, {})): full[ch] = g
    screened = {(*v.split(':', 1), m, ch):g for (v, m, ch),g in groups.items() if ':' in v}   # (budget, variant, machine, changes)
    bases = {(budget, m):g for (budget, name, m, _),g in screened.items() if name==SCREEN_BASE}
    lines, means = [], {}
    for (budget, name, m, ch), g in screened.items():
        f = full.get(full_changes(ch), {})
        cells = [metric(gg, k) for k,_ in shown for gg in (g, f)]
        lines.append([budget, m, name, ' '.join(sorted(g)), *[mean_sd(c) for c in cells], screen_verdict(g, bases.get((budget, m)))])
        if f: means.setdefault((budget, m), []).append([np.mean(c) for c in cells])
    rho = [[b, m, '', f'Spearman over {len(ms)} variants', *[c for q in range(len(shown)) for c in (f'{spearmanr(np.array(ms)[:, 2*q], np.array(ms)[:, 2*q+1])[0]:+.2f}', '')], '']
           for (b, m),ms in means.items() if len(ms)>2]
    head = ['budget', 'machine', 'variant', 'seeds', *[f'{t} {w}' for _,t in shown for w in ('screened', 'full')], 'screen verdict']
    return md_table(head, lines + rho)

SCREEN_PROTOCOL = """### Screening budgets against full runs

Each screened variant (`--screen SECTION`: a `[screen...]` budget of `bench/variants.ini`) per machine, beside the full runs with the same settings \
('-': none ran), mean ± sd over seeds; the Spearman rows correlate a budget's screened means with the full means over the variants that have both (+1: the \
same order). A budget would judge only if it ordered the variants as full runs do on test/, the column that judges; none does, so the **screen verdict** \
uses only valid/ and the shifted valid/, which it does order: against `{base}` (cpu-best's settings) screened at the same budget on the same machine, a variant \
whose mean falls more than {sds} of the baseline's screened seed-sds below it on either is dropped; every other one needs a full run on a bf16 CPU or a GPU, \
where issue 30's rule judges it on test/.
""".format(base=SCREEN_BASE, sds=SCREEN_SDS)

def render(rows:list|None=None):
    rows = rows if rows is not None else json.loads(ROWS.read_text())
    write_section('recipe', PROTOCOL + '\n' + table(rows) + '\n\n' + SCREEN_PROTOCOL + '\n' + screen_table(rows))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('variants', nargs='*', help='sections of bench/variants.ini or packaged recipes to train and score')
    ap.add_argument('--seeds', type=int, nargs='+', default=[42], help='one run per seed')
    ap.add_argument('--threads', type=int, default=None, help='torch threads of each training and of the scoring')
    ap.add_argument('--score', nargs='+', default=None, metavar='RUN', help='score finished run folder(s) (several: their mean)')
    ap.add_argument('--variant', default=None, help="the scored row's variant name (default: the run's bench.json, else its folder name)")
    ap.add_argument('--adabn', action='store_true', help='with --score: recompute BatchNorm statistics on each scored set first (AdaBN)')
    ap.add_argument('--time-log', default=None, help='`/usr/bin/time -v` log of the training, for wall time and peak RSS')
    ap.add_argument('--merge', default=None, metavar='ROWS.json', help='add rows measured elsewhere (bench/gpu.sh recipe)')
    ap.add_argument('--table', action='store_true', help='only re-render the table from the rows')
    ap.add_argument('--list', action='store_true', help='list the variants of bench/variants.ini')
    ap.add_argument('--screen', nargs='?', const=SCREEN, default=None, metavar='SECTION', help='train at the screening budget of [screen] (or of SECTION) in bench/variants.ini (rows: SECTION:NAME)')
    a = ap.parse_args()
    if a.list: print('\n'.join(_ini_sections())); return
    if not (a.table or a.variants or a.score or a.merge): ap.error('name variants to train, --score RUN, --merge, --table or --list')
    set_threads(a.threads)
    try:
        if a.variants or a.score:
            if not (PCAM/'valid').is_dir(): sys.exit(f"{PCAM}/valid is absent: set HISTO_PCAM to the pcam-sample folder.")
            for v in a.variants:  # an unknown name or a folder that is no run fails now, not after a run
                if v not in _ini_sections():
                    try: load_settings(packaged_settings, v)
                    except HistoError: sys.exit(f"Unknown variant '{v}': name a section of {VARIANTS} ({', '.join(_ini_sections())}) or a packaged recipe (e.g. cpu-best).")
            for r in a.score or []:
                if not (Path(r)/'model.json').is_file(): sys.exit(f"{r} holds no model.json: pass a run folder that `histo train` wrote.")
            if a.screen: screen_budget(a.screen)  # a budget that is no [screen...] section fails now, not after decoding
            sets = eval_sets()
            if a.score: add_row(score(a.score, a.variant, sets, a.time_log, a.adabn))
            for v in a.variants:
                for seed in a.seeds: add_row(score([train_run(v, seed, a.threads, screen=a.screen)], f'{a.screen}:{v}' if a.screen else v, sets))
        for r in (json.loads(Path(a.merge).read_text()) if a.merge else []): add_row(r)
        render()
    except HistoError as e: sys.exit(str(e))

if __name__=='__main__': main()
