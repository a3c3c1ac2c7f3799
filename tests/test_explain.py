"`histo explain` end to end where it meets the environment: without the optional Grad-CAM package (the `extras` extra)."
from __future__ import annotations
import subprocess, sys

def test_explain_without_gradcam_is_one_line(tmp_path):
    "A user without grad-cam reads which extra to install, in one line with status 2, not a ModuleNotFoundError traceback."
    hide = "import sys; sys.modules['pytorch_grad_cam'] = None; from histo_lib.cli import main; main()"
    r = subprocess.run([sys.executable, '-c', hide, 'explain', str(tmp_path/'run'), str(tmp_path/'data'), '--out', str(tmp_path/'x.png')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["histo explain: error: Grad-CAM (histo_lib.explain, histo explain) needs the 'extras' "
                                             "extra (pytorch_grad_cam is not installed): pip install 'histo_lib[extras]'"]
    assert not (tmp_path/'x.png').exists()
