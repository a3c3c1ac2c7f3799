#!/usr/bin/env bash
# histo_lib's two entry points, for a fresh machine with only python3 and pip:
#   ./dev.sh demo   set up .venv, then synth -> train -> predict (TTA) -> evaluate -> check the submission
#   ./dev.sh test   set up .venv, then the whole test suite: pytest over tests/ and nbdev-test over nbs/
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
  local data=${HISTO_DEMO_DATA:-data/synth} run=${HISTO_DEMO_RUN:-runs/demo} h="$VENV/bin/histo"
  local t0=$SECONDS
  "$h" synth "$data" --n-train 3000 --n-test 1000 --seed 42 --overwrite
  "$h" info "$data"
  "$h" train "$data" --out "$run"
  "$h" predict "$run" "$data" --out "$run/submission.csv"
  "$h" evaluate "$run" "$data" --split test --out "$run/report"
  "$h" check-submission "$run/submission.csv" --sample-submission "$data/sample_submission.csv"
  echo "== demo finished in $((SECONDS-t0)) s (after set-up)"
  echo "   data:        $data (hidden test answers: $data/test_labels.csv)"
  echo "   model:       $run/model.safetensors + $run/model.json, epoch log $run/history.csv"
  echo "   submission:  $run/submission.csv (probabilities, validated)"
  echo "   report:      $run/report/report.md (+ report.json, roc.png, confusion.png, errors.png)"
}

run_tests() {
  setup
  "$VENV/bin/python" -m pytest -q tests
  # nbdev-test runs two notebooks at a time: one torch thread each keeps 2 cores from thrashing
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$VENV/bin/nbdev-test"
}

case "${1:-}" in
  setup) setup ;;
  demo) demo ;;
  test) run_tests ;;
  export) setup; "$VENV/bin/nbdev-export" ;;
  readme) setup; "$VENV/bin/jupyter" nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN ;;
  *) echo "usage: ./dev.sh {demo|test|setup|export|readme}" >&2; exit 2 ;;
esac
