"""What every bench script shares: the machine's names (CPU via lscpu, GPU), FLOPs per image, markdown tables, and
one section per script in bench/RESULTS.md.

Each script owns the section between `<!-- BEGIN name -->` and `<!-- END name -->`; re-running it replaces only that
section (atomically), stamped with the date, the command and the machine."""
from __future__ import annotations
import os, re, subprocess, sys, textwrap, time, tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get('HISTO_BENCH_RESULTS') or BENCH/'RESULTS.md')  # a scratch file for runs elsewhere
PCAM = Path(os.environ.get('HISTO_PCAM') or BENCH.parents[1]/'shared'/'data'/'pcam-sample').resolve()  # the real sample, outside the repo
HEADER = "# Benchmark results\n\nEvery figure below was printed by the script named in its section, on the machine named there.\n"

def cpu_name()->str:
    "The CPU's model name from `lscpu`, tagged with its bfloat16 hardware (AMX, AVX512-BF16), or '(float32)' without any: `bf16` training falls back there."
    try: out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError: out = ''
    name = next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), None)
    if name is None:  # no lscpu: /proc/cpuinfo
        try: name = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
        except (OSError, StopIteration): name = 'unknown CPU'
    flags = next((l for l in out.splitlines() if l.startswith('Flags')), '')
    return name + (' (AMX)' if 'amx_tile' in flags else ' (AVX512-BF16)' if 'avx512_bf16' in flags else ' (float32)' if flags else '')

def gpu_name()->str|None:
    "The first GPU's name, or None without one."
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

def device_name()->str:
    "Where a run computes: the GPU's name, else the CPU's (`cpu_name`)."
    return gpu_name() or cpu_name()

def n_cores()->int: return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()

def machine()->str:
    "One line naming the CPU, cores, memory, GPU, torch build, threads and load."
    import torch
    mem = os.sysconf('SC_PAGE_SIZE')*os.sysconf('SC_PHYS_PAGES')/2**30
    return (f"{cpu_name()}, {n_cores()} cores, {mem:.0f} GiB RAM, {gpu_name() or 'no GPU'}, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")

def gflop(model, # a torch model taking (n,3,crop,crop)
          crop:int, # input side
          train:bool=False, # forward + backward (a training image) instead of forward only (one inference view)
         )->float:
    "GFLOP per image, counted by torch's FlopCounterMode on a batch of 4."
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    dev = next(model.parameters()).device
    model.train(train); x = torch.randn(4, 3, crop, crop, device=dev)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        if train: out.float().mean().backward()
    model.zero_grad(set_to_none=True); model.eval()
    return fc.get_total_flops()/4/1e9

def md_table(header:list, # column titles
             rows:list, # rows of cells (anything `str` can show)
            )->str:
    "A markdown table."
    return '\n'.join(['| ' + ' | '.join(header) + ' |', '|' + '---|'*len(header)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])

def wrap(md:str, width:int=200)->str:
    "Markdown with every prose line wrapped at `width` (tables, headings and list items left as they are)."
    return '\n'.join(l if l.startswith(('|', '#', '<!--', '    ')) or len(l)<=width else textwrap.fill(l, width, break_long_words=False, break_on_hyphens=False)
                     for l in md.split('\n'))

def command()->str: return 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])

def write_section(name:str, # the section's marker name
                  body:str, # markdown, starting with its `## ` title
                 ):
    "Replace (or append) the section `name` of RESULTS.md with `body`, stamped with date, command and machine."
    stamp = f"_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · `{command()}` · {machine()}_\n\n"
    block = f"<!-- BEGIN {name} -->\n{wrap(body.rstrip())}\n\n{wrap(stamp.rstrip())}\n<!-- END {name} -->"
    txt = RESULTS.read_text() if RESULTS.exists() else HEADER
    pat = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    txt = pat.sub(lambda m: block, txt) if pat.search(txt) else txt.rstrip()+'\n\n'+block+'\n'
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f: f.write(txt)
    os.chmod(tmp, 0o644); os.replace(tmp, RESULTS)
    print(f"\nWrote section '{name}' of {RESULTS}")
