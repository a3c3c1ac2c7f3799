import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
PCAM = ROOT.parent/'shared'/'data'/'pcam-sample'

@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    "Each test session decodes into its own cache, never the user's ~/.cache."
    monkeypatch.setenv('HISTO_CACHE', str(tmp_path_factory.getbasetemp()/'histo_cache'))

@pytest.fixture
def pcam():
    if not (PCAM/'train').is_dir(): pytest.skip(f'{PCAM} is absent (only a developer checkout has ../shared)')
    return PCAM

def histo_cmd():
    "The installed `histo` console script beside this interpreter."
    exe = Path(sys.executable).parent/'histo'
    return [str(exe)] if exe.exists() else [sys.executable, '-c', 'from histo_lib.cli import main; main()']
