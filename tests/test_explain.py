"Tests for histo_lib.explain: target layers, Grad-CAM maps and the PNG grid."
from __future__ import annotations
import numpy as np, pytest, torch, timm
from torch import nn
from histo_lib.core import HistoError
from histo_lib.explain import default_target_layer, gradcam, plot_explain, explain_to_png

torch.set_num_threads(1)
PNG = b'\x89PNG\r\n\x1a\n'

def tiny_net():
    return nn.Sequential(nn.Conv2d(3,8,3,padding=1), nn.ReLU(), nn.Conv2d(8,16,3,padding=1), nn.ReLU(),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16,1))

def squares(n, seed):
    "Noise patches; positives carry one bright 8x8 square at a random place (returned as a mask)."
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n,3,32,32, generator=g)*0.5, (torch.rand(n, generator=g)<0.5).float()
    pos = torch.randint(0, 24, (n,2), generator=g)
    mask = torch.zeros(n,32,32, dtype=torch.bool)
    for i in range(n):
        if y[i]: r,c = pos[i].tolist(); mask[i,r:r+8,c:c+8] = True
    return x + 2*mask[:,None], y, mask

@pytest.fixture(scope='module')
def trained_tiny():
    torch.manual_seed(0)
    net = tiny_net(); opt = torch.optim.Adam(net.parameters(), 1e-2)
    for step in range(150):
        x, y, _ = squares(32, step)
        loss = nn.functional.binary_cross_entropy_with_logits(net(x)[:,0], y)
        opt.zero_grad(); loss.backward(); opt.step()
    return net

def check_maps(cams, shape):
    assert cams.shape==shape and cams.dtype==np.float32
    assert np.isfinite(cams).all() and cams.min()>=0 and cams.max()<=1
    assert (cams.std((1,2))>1e-3).all(), "every map varies"

def test_default_target_layers():
    r18 = timm.create_model('resnet18', pretrained=False, num_classes=1)
    assert default_target_layer(r18) is r18.layer4
    eb0 = timm.create_model('efficientnet_b0', pretrained=False, num_classes=1)
    assert default_target_layer(eb0) is eb0.bn2
    net = tiny_net()
    assert default_target_layer(net) is net[3]
    with pytest.raises(HistoError, match='target_layer'): default_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(3*64*64, 1)))

def test_gradcam_tiny_shape_range_and_state(trained_tiny):
    x, y, _ = squares(16, 123)
    x = x[y==1][:6]                              # a negative may have no tumour evidence at all: an all-zero map
    trained_tiny.train()
    cams = gradcam(trained_tiny, x, bs=4)       # two chunks
    check_maps(cams, (6,32,32))
    assert trained_tiny.training
    assert all(p.grad is None for p in trained_tiny.parameters())

def test_gradcam_points_at_evidence(trained_tiny):
    x, y, mask = squares(64, 999)
    with torch.no_grad(): acc = ((trained_tiny(x)[:,0]>0).float()==y).float().mean().item()
    assert acc>0.9
    pos = y==1
    cams = gradcam(trained_tiny, x[pos])
    inside, outside = cams[mask[pos].numpy()].mean(), cams[~mask[pos].numpy()].mean()
    assert inside > 3*outside, (inside, outside)

def test_gradcam_timm_resnet18():
    torch.manual_seed(0)
    m = timm.create_model('resnet18', pretrained=False, num_classes=1)
    check_maps(gradcam(m, torch.randn(2,3,48,48)), (2,48,48))
    check_maps(gradcam(m, torch.randn(2,3,64,64), target_layer=m.layer3), (2,64,64))

def test_gradcam_refcnn():
    models = pytest.importorskip('histo_lib.models')
    torch.manual_seed(0)
    m = models.build_model('reference', 64, widths=(8,16,32), dense=32)
    assert default_target_layer(m) is m.features[-1][-2]
    check_maps(gradcam(m, torch.randn(3,3,64,64)), (3,64,64))

def test_plot_explain_png(tmp_path):
    rng = np.random.default_rng(0)
    imgs = (rng.random((5,64,64,3))*255).astype(np.uint8)
    cams = rng.random((5,64,64)).astype(np.float32)
    fn = plot_explain(imgs, cams, [0,1,np.nan,1,0], [0.1,0.8,0.5,0.2,0.9], tmp_path/'sub'/'cams.png', ids=list('abcde'), ncols=2)
    assert fn.read_bytes()[:8]==PNG
    assert [p.name for p in (tmp_path/'sub').iterdir()]==['cams.png']  # no temp files left
    fn2 = plot_explain(imgs[:1], cams[:1], None, [0.3], tmp_path/'one.png')
    assert fn2.read_bytes()[:8]==PNG
    with pytest.raises(HistoError, match='do not match'): plot_explain(imgs, cams[:, :32], None, np.zeros(5), tmp_path/'bad.png')
    with pytest.raises(HistoError, match='no patches'): plot_explain(imgs[:0], cams[:0], None, [], tmp_path/'none.png')
    assert not (tmp_path/'bad.png').exists()

def test_explain_to_png(tmp_path):
    torch.manual_seed(0)
    m = timm.create_model('resnet18', pretrained=False, num_classes=1)
    x = (np.random.default_rng(1).random((3,96,96,3))*255).astype(np.uint8)
    fn, probs, cams = explain_to_png(m, x, 64, [0.7,0.55,0.7], [0.15,0.2,0.15], tmp_path/'x.png', y=[0,1,1], ids=['a','b','c'])
    assert fn.read_bytes()[:8]==PNG
    check_maps(cams, (3,64,64))
    assert probs.shape==(3,) and ((probs>0)&(probs<1)).all()
    fn, probs, cams = explain_to_png(m, x[0], 96, [0.5]*3, [0.2]*3, tmp_path/'one.png')   # a single HWC patch
    assert cams.shape==(1,96,96) and fn.exists()
