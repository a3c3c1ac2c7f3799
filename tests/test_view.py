"""`histo view`: the server on the loopback (status codes, path traversal in several encodings, bad tile coordinates, a
burst of concurrent tile requests with bounded threads and cache), the page in headless Chromium (tiles load, the heat
map lies on the synthetic slide's known tumour, the URL keeps the view, no console error) and the command stopping on
a signal. The screenshot is saved as `view-screenshot.png` in the test's temporary folder (and where $HISTO_VIEW_SHOT says)."""
from __future__ import annotations
import http.client, json, os, re, shutil, signal, subprocess, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from conftest import histo_cmd

pytest.importorskip('openslide'); pytest.importorskip('starlette'); pytest.importorskip('uvicorn')
from histo_lib.synth import slide_truth
from histo_lib.files import write_json
from histo_lib.regions import tumour_regions
from histo_lib.synth import synth_slide
from histo_lib.wsi import read_plan
from histo_lib.viewer import SlideStore, view_app, make_server

CELL = 96
SECRET = 'SECRET-7f3a'  # in files beside the outputs that the server must never send

def fake_outputs(out:Path, fn:Path, tmap:np.ndarray, seed:int=0)->Path:
    "`histo slide`'s outputs for slide `fn` with a heat map that is its truth map plus noise (a perfect model)."
    heat = np.where(tmap==1, 0.9, 0.1) + np.random.default_rng(seed).uniform(-0.08, 0.08, tmap.shape)
    heat = np.where(tmap<0, np.nan, heat).astype(np.float32)
    d = out/fn.stem; d.mkdir(parents=True, exist_ok=True)
    rr, cc = np.nonzero(~np.isnan(heat)); p = heat[rr, cc]
    pd.DataFrame(dict(x=cc*CELL, y=rr*CELL, w=CELL, h=CELL, prob=p, row=rr, col=cc, tissue=1.)).to_csv(d/'tiles.csv', index=False)
    np.save(d/'heatmap.npy', heat)
    reg = tumour_regions(heat, read_plan([1.], 0.972, tile=CELL), 0.5, 0.972); write_json(reg, d/'regions.geojson')
    write_json(dict(slide=str(fn), name=d.name, size_l0=[tmap.shape[1]*CELL, tmap.shape[0]*CELL], tile_l0=CELL, stride_l0=CELL,
                    grid=list(tmap.shape), threshold=0.5, n_tissue=len(p), n_tumour=int((p>=.5).sum()), n_regions=len(reg['features']),
                    slide_mpp=0.972, score=dict(max=float(p.max()), p95=float(np.percentile(p, 95)), mean=float(p.mean()))), d/'slide.json')
    (d/'secret.txt').write_text(SECRET)
    return d

@pytest.fixture(scope='module')
def outs(tmp_path_factory):
    "Two synthetic slides (slide paths relative to the project folder, as typed), a file that is no slide, and a report."
    root = tmp_path_factory.mktemp('view'); (root/'slides').mkdir()
    maps = {'case-a': slide_truth(1), 'case-b': slide_truth(2, rows=12, cols=16)}
    for n, m in maps.items(): synth_slide(root/'slides'/f'{n}.tif', m, seed=1); fake_outputs(root/'out', Path('slides')/f'{n}.tif', m)
    (root/'slides'/'broken.tif').write_bytes(b'not a slide'); fake_outputs(root/'out', Path('slides')/'broken.tif', maps['case-b'])
    (root/'secret.txt').write_text(SECRET)
    rep = root/'report'; (rep/'annotations').mkdir(parents=True)
    (rep/'report.json').write_text(json.dumps(dict(slide_auc=1., slides=[dict(slide='case-a', label=1, score=.9, lesions=2, itcs=0, hits=2, fps=0)])))
    pd.DataFrame(dict(slide=['case-a', 'case-b'], score=[.9, .1], label=[1, 0])).to_csv(rep/'slides.csv', index=False)
    pd.DataFrame(dict(slide='case-a', x=[1000., 2000.], y=[1200., 900.], prob=[.95, .9])).to_csv(rep/'detections.csv', index=False)
    truth = np.where(maps['case-a']==1, 1., np.nan)
    write_json(tumour_regions(truth, read_plan([1.], 0.972, tile=CELL), 0.5), rep/'annotations'/'case-a.geojson')
    return root, maps

class Served:
    "The app on a free loopback port in a thread; `get` sends the path exactly as given (no client-side normalising)."
    def __init__(self, store, threads=2):
        self.store, self.app = store, view_app(store, threads)
        self.server, sock, self.url = make_server(self.app, port=0)
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs=dict(sockets=[sock]), daemon=True); self.thread.start()
        for _ in range(200):
            if self.server.started: break
            time.sleep(0.05)
    def get(self, path:str)->tuple[int, bytes]:
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
        c.putrequest('GET', path, skip_accept_encoding=True); c.endheaders()
        r = c.getresponse(); body = r.read(); c.close()
        return r.status, body
    def stop(self):
        self.server.should_exit = True; self.thread.join(10)
        assert not self.thread.is_alive()

@pytest.fixture(scope='module')
def served(outs):
    root, _ = outs
    store = SlideStore(root/'out', root/'report', cache_mb=0.25)   # slide.json's 'slides/x.tif' is found beside out/
    store.check()
    s = Served(store); yield s; s.stop()

def test_statuses_traversal_and_bad_tiles(served):
    ok = ['/', '/api/slides', '/api/slides/case-a', '/api/slides/broken', '/tiles/case-a_files/12/3_2.jpeg', '/tiles/case-a_files/0/0_0.jpeg',
          '/heat/case-a.png', '/outlines/case-a/regions.geojson', '/outlines/case-a/truth.geojson', '/static/viewer.js',
          '/static/openseadragon/openseadragon.min.js', '/static/openseadragon/images/home_rest.png', '/static/openseadragon/LICENSE.txt']
    got = {u: served.get(u)[0] for u in ok}
    assert set(got.values()) == {200}, got
    rows = json.loads(served.get('/api/slides')[1])['slides']
    assert [r['name'] for r in rows] == ['broken', 'case-a', 'case-b'] and rows[1]['hits'] == 2 and rows[2]['label'] == 0
    assert 'cannot be opened as a slide' in rows[0]['error'] and 'cannot be opened' in json.loads(served.get('/api/slides/broken')[1])['error']
    bad = ['/tiles/case-a_files/13/0_0.jpeg', '/tiles/case-a_files/12/13_0.jpeg', '/tiles/case-a_files/12/0_10.jpeg',
           '/tiles/case-a_files/-1/0_0.jpeg', '/tiles/case-a_files/12/-1_0.jpeg', '/tiles/case-a_files/99999999999999999999/0_0.jpeg',
           '/tiles/case-a_files/x/0_0.jpeg', '/tiles/case-a_files/12/0_0.png', '/tiles/broken_files/0/0_0.jpeg', '/tiles/nope_files/0/0_0.jpeg',
           '/api/slides/nope', '/heat/nope.png', '/outlines/case-b/truth.geojson', '/outlines/case-a/slide.geojson', '/static/nope.js']
    traversal = ['/static/../viewer.py', '/static/%2e%2e/viewer.py', '/static/%2e%2e%2fviewer.py', '/static/..%2fviewer.py',
                 '/static/..%5cviewer.py', '/static/%252e%252e%252fviewer.py', '/static/%c0%ae%c0%ae/viewer.py', '/static//etc/passwd',
                 '/static/%2fetc%2fpasswd', '/static/openseadragon/../../viewer.py', '/static/', '/static/openseadragon/',
                 '/static/openseadragon/images/', '/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/api/slides/..%2fsecret.txt',
                 '/api/slides/%2e%2e', '/heat/..%2fcase-a%2fsecret.png', '/heat/case-a%2f..%2f..%2fsecret.png',
                 '/outlines/case-a/..%2fsecret.geojson', '/tiles/..%2f..%2fsecret.txt%00_files/0/0_0.jpeg', '/out/case-a/secret.txt',
                 '/case-a/secret.txt', '/secret.txt']
    res = {u: served.get(u) for u in bad + traversal}
    wrong = {u: s for u, (s, _) in res.items() if s not in (400, 404)}
    assert not wrong, wrong
    leaked = [u for u, (_, b) in res.items() if SECRET.encode() in b or b'AUTOGENERATED' in b or b'root:' in b or b'Traceback' in b]
    assert not leaked, leaked

def test_burst_of_tiles_bounded(served):
    "200 tile requests from 16 clients at once: every one a JPEG, at most `threads` (2) slides read at a time, the cache within its bytes."
    store = served.store; store.cache._d.clear(); store.cache.nbytes = 0
    inflight, peak, lock, orig = [0], [0], threading.Lock(), store.tile
    def counted(*a):
        with lock: inflight[0] += 1; peak[0] = max(peak[0], inflight[0])
        try: time.sleep(0.002); return orig(*a)
        finally:
            with lock: inflight[0] -= 1
    store.tile = counted
    dzs = {n: store.deepzoom(n)[0] for n in ('case-a', 'case-b')}
    urls = [f'/tiles/{n}_files/{lv}/{c}_{r}.jpeg' for n, dz in dzs.items() for lv in range(dz.level_count-3, dz.level_count)
            for c in range(dz.level_tiles[lv][0]) for r in range(dz.level_tiles[lv][1])]
    urls = (urls*4)[:200]
    static = ['/static/openseadragon/openseadragon.min.js']*64   # Starlette reads files in anyio's default pool: bounded too
    threads0, most, done = threading.active_count(), [0], threading.Event()
    def sample():
        while not done.is_set(): most[0] = max(most[0], threading.active_count()); time.sleep(0.002)
    sampler = threading.Thread(target=sample); sampler.start()
    try:
        with ThreadPoolExecutor(16) as ex: res, res_static = list(ex.map(served.get, urls)), list(ex.map(served.get, static))
    finally: del store.tile; done.set(); sampler.join()
    assert [s for s, _ in res] == [200]*len(urls) and all(b[:2] == b'\xff\xd8' for _, b in res)
    assert [s for s, _ in res_static] == [200]*len(static)
    assert 1 <= peak[0] <= 2, peak
    assert store.cache.nbytes <= store.cache.max_bytes == int(0.25*2**20) and len(store.cache) < len(set(urls)), (store.cache.nbytes, len(store.cache))
    assert most[0] <= threads0 + 1 + 16 + 2 + 2, (threads0, most)   # the sampler, the clients, two tile readers, two file readers

def pixel(im:np.ndarray, x:float, y:float)->np.ndarray: return im[int(round(y)), int(round(x))].astype(int)

def test_page_in_chromium(served, outs, tmp_path):
    pw_api = pytest.importorskip('playwright.sync_api')
    chromium = shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(chromium).exists(): pytest.skip(f'no {chromium}')
    _, maps = outs
    m = maps['case-a']
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'])
        page = b.new_page(viewport={'width': 1400, 'height': 800})
        errors, images, failed = [], [], []
        page.on('console', lambda msg: errors.append(msg.text) if msg.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.on('response', lambda r: images.append(r.url) if r.request.resource_type == 'image' and r.ok else None)
        page.on('requestfailed', lambda r: failed.append(r.url))
        page.goto(served.url + '#slide=case-a&opacity=1', wait_until='networkidle')
        page.wait_for_function("() => document.querySelectorAll('#slides tbody tr').length === 3 && viewer.world.getItemCount() === 2 && viewer.world.getItemAt(1).getFullyLoaded()")
        page.wait_for_load_state('networkidle')
        names = page.eval_on_selector_all('#slides tbody tr', 'rs => rs.map(r => r.dataset.name)')
        assert sorted(names) == ['broken', 'case-a', 'case-b'] and page.locator('#slides tr.bad').count() == 1
        tiles = [u for u in images if '/tiles/case-a_files/' in u]
        assert len(tiles) >= 8 and any('/heat/case-a.png' in u for u in images), images
        assert page.is_visible('#det-box') and page.evaluate("() => state.desc.detections.length") == 2
        page.uncheck('#show-regions'); page.uncheck('#show-truth'); page.uncheck('#show-detections'); page.wait_for_timeout(200)
        shot = tmp_path/'view-opaque.png'; page.screenshot(path=str(shot))
        # the heat map lies on the known tumour: at full opacity, the centre of every tumour cell is red, of normal tissue blue
        pts = page.evaluate("""cells => cells.map(([r, c]) => { const p = viewer.world.getItemAt(0).imageToViewerElementCoordinates(
            new OpenSeadragon.Point((c + 0.5) * 96, (r + 0.5) * 96)); const o = viewer.container.getBoundingClientRect();
            return [p.x + o.left, p.y + o.top]; })""", [[int(r), int(c)] for r, c in np.argwhere(m >= 0)])
        im = np.asarray(Image.open(shot).convert('RGB'))
        cols = [pixel(im, x, y) for x, y in pts]
        tum = [(px[0] > 100 and px[2] < 80) for px, (r, c) in zip(cols, np.argwhere(m >= 0)) if m[r, c] == 1]
        nor = [(px[2] > 100 and px[0] < 80) for px, (r, c) in zip(cols, np.argwhere(m >= 0)) if m[r, c] == 0]
        assert np.mean(tum) >= 0.95 and np.mean(nor) >= 0.95, (np.mean(tum), np.mean(nor))
        # the probability under the pointer
        r, c = np.argwhere(m == 1)[0]
        page.mouse.move(*pts[[tuple(x) for x in np.argwhere(m >= 0)].index((r, c))])
        assert re.search(rf'tile \({r}, {c}\).*P = 0\.(8|9)', page.inner_text('#prob')), page.inner_text('#prob')
        # the view survives a reload; another slide from the list; the unreadable one shows its error
        page.check('#show-regions'); page.check('#show-truth'); page.check('#show-detections')
        page.evaluate("() => viewer.viewport.zoomTo(3, new OpenSeadragon.Point(0.4, 0.3))")
        page.wait_for_function("() => location.hash.includes('z=3.0')")
        page.reload(wait_until='networkidle'); page.wait_for_function("() => viewer.world.getItemCount() === 2")
        z = page.evaluate("() => viewer.viewport.getZoom()")
        assert abs(z - 3) < 0.01 and 'slide=case-a' in page.evaluate('location.hash'), z
        shot = tmp_path/'view-screenshot.png'; page.evaluate("() => { document.getElementById('opacity').value = 0.45; viewer.world.getItemAt(1).setOpacity(0.45); }")
        page.evaluate("() => viewer.viewport.goHome(true)"); page.wait_for_load_state('networkidle'); page.wait_for_timeout(300)
        page.screenshot(path=str(shot))
        if os.environ.get('HISTO_VIEW_SHOT'): shutil.copy(shot, os.environ['HISTO_VIEW_SHOT'])
        page.click('#slides tr[data-name="case-b"] a'); page.wait_for_function("() => location.hash.includes('case-b') && viewer.world.getItemCount() === 2")
        page.click('#slides tr[data-name="broken"] a'); page.wait_for_function("() => !document.getElementById('error').hidden")
        assert 'cannot be opened as a slide' in page.inner_text('#error')
        page.wait_for_load_state('networkidle')
        b.close()
    assert not errors and not failed, (errors, failed)

def listening_addresses(port:int)->list[str]:
    "Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."
    res = []
    for fn in ('/proc/net/tcp', '/proc/net/tcp6'):
        if not Path(fn).exists(): continue
        for line in Path(fn).read_text().splitlines()[1:]:
            f = line.split()
            addr, p = f[1].split(':')
            if f[3] == '0A' and int(p, 16) == port: res.append(addr)
    return res

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_cli_loopback_and_stops_on_signal(outs, sig):
    root, _ = outs
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    p = subprocess.Popen(histo_cmd() + ['view', 'out', '--port', '0'], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r'http://127\.0\.0\.1:(\d+)/', line)
        assert m and 'Serving 3 slide(s)' in line, line + p.stderr.read()
        port = int(m.group(1))
        if Path('/proc/net/tcp').exists(): assert listening_addresses(port) == ['0100007F'], listening_addresses(port)
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=30); c.request('GET', '/api/slides')
        assert c.getresponse().status == 200; c.close()
        p.send_signal(sig)
        p.wait(timeout=15); out, err = p.stdout.read(), p.stderr.read()  # not communicate(): it would skip what readline buffered
    finally:
        if p.poll() is None: p.kill(); p.wait()
    assert p.returncode == 0 and 'stopped' in out and 'Traceback' not in err, (p.returncode, out, err)
    assert 'broken cannot be shown' in line + out
