"""Shared by the bench scripts: machine description and one section per script in bench/RESULTS.md.

Each script owns the section between `<!-- BEGIN name -->` and `<!-- END name -->`; re-running it replaces only that
section (atomically), so the file stays the single table of figures with the command and machine of every row."""
from __future__ import annotations
import os, platform, re, sys, time, tempfile
from pathlib import Path

RESULTS = Path(os.environ.get('HISTO_BENCH_RESULTS') or Path(__file__).parent/'RESULTS.md')  # a scratch file for nested runs
HEADER = "# Benchmark results\n\nEvery figure below was printed by the script named in its section, on the machine named there.\n" \
         "Re-run a section with its command; timings are never part of a pass/fail test.\n"

def machine()->str:
    "One line naming the CPU, cores, memory and torch build."
    import torch
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(':',1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: pass
    mem = os.sysconf('SC_PAGE_SIZE')*os.sysconf('SC_PHYS_PAGES')/2**30 if hasattr(os, 'sysconf') else float('nan')
    ncores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    load = f", load average {os.getloadavg()[0]:.1f} (other jobs share the cores when it is above {ncores})" if hasattr(os, 'getloadavg') else ''
    return f"{cpu}, {ncores} cores, {mem:.0f} GiB RAM, {gpu}, torch {torch.__version__}, threads {torch.get_num_threads()}{load}"

def command()->str: return 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])

def write_section(name:str, body:str):
    "Replace (or append) the section `name` of RESULTS.md with `body`, stamped with date, machine and command."
    stamp = f"_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · `{command()}` · {machine()}_\n\n"
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n\n{stamp}<!-- END {name} -->"
    txt = RESULTS.read_text() if RESULTS.exists() else HEADER
    pat = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    txt = pat.sub(lambda m: block, txt) if pat.search(txt) else txt.rstrip()+'\n\n'+block+'\n'
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f: f.write(txt)
    os.chmod(tmp, 0o644); os.replace(tmp, RESULTS)
    print(f"\nWrote section '{name}' of {RESULTS}")
