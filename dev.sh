#!/usr/bin/env bash
# histo_lib's two entry points, for a fresh machine with only python3 and pip:
#   ./dev.sh demo   set up .venv, then on the real PCam patches in samples/pcam-mini: info -> train -> predict (TTA) ->
#                   evaluate -> check the submission
#   ./dev.sh test   set up .venv, build the docs site when _docs/ has none (tests/test_docs.py opens it), then the whole
#                   test suite: ruff, pytest over tests/ (2 processes) and nbdev-test over nbs/
#                   (./dev.sh test PYTEST_ARGS: ruff and that pytest selection only)
# Other sub-commands: setup, export (nbdev-export), readme (render README.md from nbs/index.ipynb).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${HISTO_VENV:-.venv}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

setup() {
  # Installs into $VENV once; re-runs only when pyproject.toml or constraints.txt change.
  local want; want=$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-16)
  if [ -f "$VENV/.histo-setup" ] && [ "$(cat "$VENV/.histo-setup")" = "$want" ]; then return 0; fi
  echo "== setting up $VENV (torch/torchvision pinned by constraints.txt)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev,onnx,extras,slide,dist]"
  echo "$want" > "$VENV/.histo-setup"
}

demo() {
  setup
  # the demo's data and run folder are ./settings.ini's `data` and `out` (samples/pcam-mini, the 2,500 real PCam patches in
  # the repository, and runs/demo), unless HISTO_DEMO_DATA / HISTO_DEMO_RUN say otherwise; the recipe is its [demo] section
  local data run h="$VENV/bin/histo"
  read -r data run < <("$VENV/bin/python" -c "from histo_lib.settings import load_settings; s = load_settings(); print(s['data'], s['out'])")
  data=${HISTO_DEMO_DATA:-$data} run=${HISTO_DEMO_RUN:-$run}
  local t0=$SECONDS
  "$h" info "$data"
  # train/ trains; valid/ (other slides) is scored after each epoch but chooses nothing (the last weights are kept), so
  # the valid/ figures below are held-out figures
  "$h" train "$data" --recipe demo --out "$run"
  # a Kaggle-style sample submission for valid/ (its ids, label 0), which predict follows and check-submission checks against
  "$VENV/bin/python" -c "import sys, pathlib, pandas as pd; ids = sorted(p.stem for p in pathlib.Path(sys.argv[1]).glob('valid/[01]/*.jpg')); pd.DataFrame(dict(id=ids, label=0)).to_csv(sys.argv[2], index=False)" "$data" "$run/sample_submission.csv"
  "$h" predict "$run" "$data" --split valid --out "$run/submission.csv" --sample-submission "$run/sample_submission.csv"
  "$h" evaluate "$run" "$data" --split valid --out "$run/report"
  "$h" check-submission "$run/submission.csv" --sample-submission "$run/sample_submission.csv"
  echo "== demo finished in $((SECONDS-t0)) s (after set-up)"
  echo "   data:        $data (real PCam patches: train/ and valid/, other slides; what they are: samples/pcam-mini/README.md)"
  echo "   model:       $run/model.safetensors + $run/model.json, epoch log $run/history.csv"
  echo "   submission:  $run/submission.csv (probabilities for valid/, validated against $run/sample_submission.csv)"
  echo "   report:      $run/report/report.md (+ report.json, roc.png, confusion.png, reliability.png, errors.png): the held-out valid/ ROC AUC"
}

run_tests() {
  # ruff (unused imports/names), then pytest over tests/ (two pytest-xdist processes, a test file and its fixtures in one)
  # and nbdev-test over nbs/ side by side: one torch thread per process keeps the 2 cores busy without thrashing. Every
  # part runs; the exit status is non-zero if any failed. Extra arguments go to pytest alone (e.g. ./dev.sh test -k cli
  # -x; -n 0 for one process), and the notebooks are then skipped.
  setup
  local t0=$SECONDS failed=() nb_log nb_pid rc=0
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HISTO_THREADS=${HISTO_THREADS:-1}
  # the site tests/test_docs.py opens in Chromium: built (./dev.sh docs) when missing, so its browser tests never skip here
  if [ ! -f _docs/index.html ]; then echo "== no _docs/index.html: building the site first"; docs || failed+=(docs); fi
  echo "== ruff check --select F401,F811,F841 histo_lib/"
  "$VENV/bin/ruff" check --quiet --select F401,F811,F841 histo_lib/ || failed+=(ruff)
  if [ $# -eq 0 ]; then
    nb_log=$(mktemp); echo "== nbdev-test over nbs/ in the background (its log follows pytest's)"
    "$VENV/bin/nbdev-test" --timing > "$nb_log" 2>&1 & nb_pid=$!
    trap '[ -n "${nb_pid:-}" ] && kill "$nb_pid" 2>/dev/null; true' EXIT  # Ctrl-C or a failure here: no notebooks left running
  fi
  echo "== pytest tests/"
  "$VENV/bin/python" -m pytest -q -rs --durations=8 -n 2 --dist loadfile "${@:-tests}" || rc=$?
  # exit 5: pytest collected nothing, a selection that matched no test (or an empty tests/): say so, never a pass
  if [ $rc -eq 5 ]; then echo "dev.sh test: pytest ran no tests (exit 5): the selection '$*' matches none" >&2; fi
  [ $rc -eq 0 ] || failed+=("pytest (exit $rc)")
  if [ -n "${nb_pid:-}" ]; then
    rc=0; wait "$nb_pid" || rc=$?; nb_pid=
    echo "== nbdev-test"; cat "$nb_log"; rm -f "$nb_log"
    [ $rc -eq 0 ] || failed+=(nbdev-test)
  fi
  echo "== dev.sh test: $((SECONDS-t0)) s"
  if [ ${#failed[@]} -gt 0 ]; then echo "dev.sh test FAILED: ${failed[*]}" >&2; return 1; fi
  echo "dev.sh test passed"
}

docs() {
  # The documentation site into _docs/ (docs/build.py): nbs/ with their saved outputs (nothing is run again), an API page
  # per module and the command line, built by Sphinx + myst-nb. tests/test_docs.py then opens it in headless Chromium:
  # Debian's package, installed here when missing and running as root.
  setup
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's chromium for tests/test_docs.py"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "dev.sh docs: could not install chromium: tests/test_docs.py will fail until it is installed" >&2
  fi
  local t0=$SECONDS
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HISTO_THREADS=${HISTO_THREADS:-1} "$VENV/bin/python" docs/build.py
  echo "== dev.sh docs: $((SECONDS-t0)) s -> _docs/index.html"
}

case "${1:-}" in
  setup) setup ;;
  demo) demo ;;
  test) shift; run_tests "$@" ;;
  export) setup; "$VENV/bin/nbdev-export" ;;
  docs) docs ;;
  readme) setup; "$VENV/bin/jupyter" nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN ;;
  *) echo "usage: ./dev.sh {demo|test [PYTEST_ARGS]|setup|export|readme|docs}" >&2; exit 2 ;;
esac
