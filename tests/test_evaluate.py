from __future__ import annotations
import json
import numpy as np, pytest
from sklearn.metrics import roc_auc_score
from histo_lib.core import HistoError
from histo_lib.evaluate import metrics_report, stratified_sample, plot_errors, evaluate_preds

PNG_SIG = b'\x89PNG\r\n\x1a\n'
Y, P = [0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.6, 0.4, 0.8, 0.9]

def test_auc_hand_example():
    r = metrics_report(Y, P)
    assert r['roc_auc'] == pytest.approx(8/9) == pytest.approx(roc_auc_score(Y, P))
    assert r['confusion_matrix'] == [[2, 1], [1, 2]] and r['accuracy'] == pytest.approx(4/6)
    assert r['sensitivity'] == pytest.approx(2/3) and r['specificity'] == pytest.approx(2/3)

def test_probabilities_beat_hard_labels():
    hard = (np.array(P) >= 0.5).astype(float)
    assert metrics_report(Y, P)['roc_auc'] > metrics_report(Y, hard)['roc_auc'] == pytest.approx(2/3)

def test_bad_inputs_raise():
    with pytest.raises(HistoError, match='indices 2'): metrics_report(Y, [0.1, 0.3, np.nan, 0.4, 0.8, 0.9])
    with pytest.raises(HistoError, match='logits'): metrics_report(Y, [-2, 0.3, 0.6, 0.4, 3, 0.9])
    with pytest.raises(HistoError, match='both classes'): metrics_report([0, 0, 0], [0.1, 0.2, 0.3])

def test_stratified_sample():
    y = np.r_[np.zeros(750), np.ones(250)]
    idx = stratified_sample(200, y, seed=3)
    assert len(idx) == len(set(idx)) == 200 and y[idx].sum() == 50
    assert np.array_equal(idx, stratified_sample(200, y, seed=3))
    assert not np.array_equal(idx, stratified_sample(200, y, seed=4))

def test_evaluate_writes_everything(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 30); p = np.clip(y*0.4 + rng.random(30)*0.6, 0, 1)
    imgs = rng.integers(0, 256, (30, 96, 96, 3), dtype=np.uint8)
    rep = evaluate_preds(y, p, tmp_path/'ev', imgs=imgs, ids=[f'id{i}' for i in range(30)], extra={'tta': 'none'})
    for f in ('roc.png', 'confusion.png', 'errors.png'):
        b = (tmp_path/'ev'/f).read_bytes()
        assert b[:8] == PNG_SIG and len(b) > 1000
    saved = json.loads((tmp_path/'ev'/'report.json').read_text())
    assert saved['roc_auc'] == rep['roc_auc'] == pytest.approx(roc_auc_score(y, p)) and saved['extra'] == {'tta': 'none'}
    md = (tmp_path/'ev'/'report.md').read_text()
    assert 'ROC AUC' in md and '(errors.png)' in md and 'macro avg' in md
    assert not [o for o in (tmp_path/'ev').iterdir() if o.name.startswith('.')]

def test_errors_without_fp_or_fn(tmp_path):
    imgs = np.zeros((4, 64, 64, 3), np.uint8)
    fn = plot_errors(imgs, [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], tmp_path/'e.png')
    assert fn.read_bytes()[:8] == PNG_SIG
