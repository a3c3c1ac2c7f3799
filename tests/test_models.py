from __future__ import annotations
import json, warnings
import pytest, torch, timm
from histo_lib.core import HistoError
from histo_lib.models import RefCNN, n_params, timm_model, build_model, save_artefact, load_artefact

torch.set_num_threads(1)
CFG = dict(arch='reference', crop=64, mean=[0.70, 0.54, 0.69], std=[0.16, 0.20, 0.15], model_kwargs={})

def test_refcnn_param_count():
    n = n_params(RefCNN())
    assert 2_070_000 <= n <= 2_530_000, n

@pytest.mark.parametrize('crop', [32, 48, 64, 96])
def test_refcnn_crops(crop):
    with torch.no_grad(): assert RefCNN().eval()(torch.randn(3, 3, crop, crop)).shape == (3, 1)

def test_round_trip_identical(tmp_path):
    m = build_model('reference', 64, dense=128).eval()
    save_artefact(m, {**CFG, 'model_kwargs': {'dense': 128}}, tmp_path)
    m2, cfg = load_artefact(tmp_path/'model.json')
    xb = torch.randn(4, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(m(xb), m2(xb))
    assert not m2.training
    assert cfg['format'] == 'histo_lib-artefact-1' and cfg['n_params'] == n_params(m) and 'histo_version' in cfg

def test_default_artefact_size(tmp_path):
    save_artefact(RefCNN(), {**CFG, 'crop': 96}, tmp_path)
    assert 8.5e6 < (tmp_path/'model.safetensors').stat().st_size < 10.5e6

def test_load_missing_dir(tmp_path):
    with pytest.raises(HistoError, match='train first'): load_artefact(tmp_path/'nope')

def test_cfg_validated(tmp_path):
    with pytest.raises(HistoError, match='mean'): save_artefact(RefCNN(), {k: v for k, v in CFG.items() if k != 'mean'}, tmp_path)
    save_artefact(RefCNN(dense=16), {**CFG, 'model_kwargs': {'dense': 16}}, tmp_path)
    fn = tmp_path/'model.json'
    cfg = json.loads(fn.read_text()); cfg['std'] = [40, 50, 60]; fn.write_text(json.dumps(cfg))
    with pytest.raises(HistoError, match='std'): load_artefact(tmp_path)

def test_wrong_weights_for_cfg(tmp_path):
    save_artefact(RefCNN(dense=16), {**CFG, 'model_kwargs': {'dense': 16}}, tmp_path)
    fn = tmp_path/'model.json'
    cfg = json.loads(fn.read_text()); cfg['model_kwargs'] = {'dense': 32}; fn.write_text(json.dumps(cfg))
    with pytest.raises(HistoError, match='does not match'): load_artefact(tmp_path)

@pytest.mark.parametrize('name', ['resnet18', 'efficientnet_b0', 'densenet121', 'mobilenetv3_small_100'])
def test_timm_names(name):
    with torch.no_grad(): assert build_model(name, 64).eval()(torch.randn(2, 3, 64, 64)).shape == (2, 1)

def test_unknown_timm_name():
    with pytest.raises(HistoError, match='resnet18'): timm_model('resnet181')

def test_imagenet_head_dropped(tmp_path):
    src = timm.create_model('resnet18', pretrained=False, num_classes=1000)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path/'in1k.safetensors'))
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        m = timm_model('resnet18', weights=tmp_path/'in1k.safetensors')
    assert torch.equal(m.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert m.fc.out_features == 1 and any('fc.weight' in str(w.message) for w in ws)

def test_foreign_weights_refused(tmp_path):
    torch.save({'state_dict': timm.create_model('resnet18', num_classes=1).state_dict()}, tmp_path/'r18.pth')
    with pytest.raises(HistoError, match='r18.pth'): timm_model('resnet34', weights=tmp_path/'r18.pth')
    timm_model('resnet18', weights=tmp_path/'r18.pth')  # same arch, same head: loads fully
