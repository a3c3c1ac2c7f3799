"""The documentation site (`./dev.sh docs` -> `_docs/`), opened page by page in headless Chromium.

Runs when `_docs/index.html` exists (`./dev.sh test` builds the site when it is missing); a bare pytest skips it otherwise, with the command to build it.
Every page: loads, no console error or page error, no failed request, every image decoded (naturalWidth > 0), every
internal link (and its #anchor) resolves. Search finds the API page of `histo_dls`; the API entries that users need
first have a parameter table with a line for every parameter. Screenshots of the home page and one API page are saved
as `_docs/screenshot-home.png` and `_docs/screenshot-api.png`, and the whole-slide tutorial's heat map as
`_docs/screenshot-slides.png`.
"""
import functools, http.server, re, shutil, threading
from pathlib import Path
from urllib.parse import urlsplit, unquote
import pytest

root = Path(__file__).resolve().parent.parent
site = root/'_docs'
chromium = shutil.which('chromium') or '/usr/bin/chromium'
flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run']
must_document = ['histo_dls', 'histo_learner', 'load_run', 'Predictor', 'predict_slides']

pytestmark = pytest.mark.skipif(not (site/'index.html').exists(), reason='no site in _docs/: run ./dev.sh docs first')

def pages()->list: return sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html') if not p.relative_to(site).as_posix().startswith('_'))

@functools.cache
def ids_in(rel:str)->set:
    return set(re.findall(r'\bid="([^"]+)"', (site/rel).read_text(encoding='utf-8', errors='replace')))

def entry_page(name:str)->str|None:
    "The API page holding the entry for `name`, found by its anchor (`api-<module>-<name>`)."
    for rel in pages():
        if rel.startswith('api/') and any(i.endswith('-'+name.lower().replace('_', '-')) and i.startswith('api-') for i in ids_in(rel)): return rel
    return None

@pytest.fixture(scope='module')
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='module')
def browser():
    pw_api = pytest.importorskip('playwright.sync_api', reason='playwright is installed by `./dev.sh setup` (dev extra)')
    if not Path(chromium).exists(): pytest.fail(f"no {chromium}: `apt-get install -y chromium` (./dev.sh docs does it as root)")
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=flags)
        yield b
        b.close()

class Visitor:
    "One browser tab that opens pages and reports each one's console errors, failed requests, broken images and links."
    def __init__(self, browser):
        self.page = p = browser.new_page(viewport={'width': 1400, 'height': 900})
        self.errors, self.failed = [], []
        p.on('console', lambda m: self.errors.append(m.text) if m.type=='error' else None)
        p.on('pageerror', lambda e: self.errors.append(str(e)))
        # a request that the next navigation aborts is no failure; a missing file is a 404, an outside one fails to connect
        p.on('requestfailed', lambda r: self.failed.append(f"{r.url} ({r.failure})") if 'ERR_ABORTED' not in (r.failure or '') else None)
        p.on('response', lambda r: self.failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)

    def __call__(self, url:str, shot:Path|None=None, show:str|None=None)->dict:
        "Open `url`; with `shot`, a screenshot after scrolling the sidebar to its top and `show` (a CSS selector) into view."
        self.errors.clear(); self.failed.clear(); p = self.page
        resp = p.goto(url, wait_until='load')
        p.evaluate("""() => Promise.all(Array.from(document.images).map(i => {
            i.loading = 'eager'; return i.decode().catch(() => null); }))""")
        r = p.evaluate("""() => ({n_imgs: document.images.length,
            bad_imgs: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
            links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href)})""")
        if shot:
            p.evaluate("() => document.querySelectorAll('.bd-sidebar-primary, .bd-sidebar-primary *').forEach(e => e.scrollTop = 0)")
            if show: p.locator(show).first.scroll_into_view_if_needed()
            p.screenshot(path=str(shot))
        return dict(status=resp.status if resp else None, errors=list(self.errors), failed=list(self.failed), **r)

def broken_links(base:str, links:list)->list:
    "Internal links whose file or #anchor is not in the site."
    bad = []
    for l in links:
        if not l.startswith(base): continue
        u = urlsplit(l); rel = unquote(u.path[len(urlsplit(base).path):]) or 'index.html'
        if rel.endswith('/'): rel += 'index.html'
        if not (site/rel).is_file(): bad.append(l); continue
        if u.fragment and rel.endswith('.html') and unquote(u.fragment) not in ids_in(rel): bad.append(l)
    return bad

def test_every_page(server, browser):
    ps = pages()
    assert 'index.html' in ps and any(p.startswith('api/') for p in ps) and 'cli.html' in ps, ps
    problems, n_imgs, visit = {}, 0, Visitor(browser)
    for rel in ps:
        r = visit(server+rel, shot=site/'screenshot-home.png' if rel=='index.html' else None)
        n_imgs += r['n_imgs']
        bad = {k: r[k] for k in ('errors', 'failed', 'bad_imgs') if r[k]}
        if r['status'] != 200: bad['status'] = r['status']
        if (bl := broken_links(server, r['links'])): bad['broken_links'] = sorted(set(bl))
        if bad: problems[rel] = bad
    assert not problems, '\n'.join(f"{rel}: {bad}" for rel, bad in problems.items())
    assert n_imgs >= 5, f"only {n_imgs} images in the whole site: the notebooks' pictures are missing"

def test_tutorial_pictures(server, browser):
    "The whole-slide tutorial shows its heat map (screenshot: `_docs/screenshot-slides.png`); the PCam one its pictures."
    visit = Visitor(browser)
    for rel, n in (('tutorials/slides.html', 1), ('tutorials/pcam.html', 3)):
        r = visit(server+rel, **(dict(shot=site/'screenshot-slides.png', show='article img') if 'slides' in rel else {}))
        assert r['n_imgs'] >= n and not r['bad_imgs'], (rel, r['n_imgs'], r['bad_imgs'])

def test_search_finds_histo_dls(server, browser):
    want = entry_page('histo_dls')
    assert want, 'no API entry for histo_dls'
    page = browser.new_page()
    page.goto(server+'search.html?q=histo_dls', wait_until='load')
    page.wait_for_function("() => document.querySelectorAll('#search-results li a, ul.search li a').length > 0", timeout=30_000)
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('#search-results li a, ul.search li a')).map(a => a.href)")
    page.close()
    assert any(urlsplit(h).path.endswith('/'+want) for h in hrefs), (want, hrefs)

@pytest.mark.parametrize('name', must_document)
def test_api_entry_documents_every_parameter(name):
    "The entry has its signature, and a parameter table whose every row has its docments line."
    rel = entry_page(name)
    assert rel, f"no API entry for {name}"
    html = (site/rel).read_text(encoding='utf-8')
    anchor = next(i for i in ids_in(rel) if i.startswith('api-') and i.endswith('-'+name.lower().replace('_', '-')))
    start = html.index(f'id="{anchor}"')
    nxt = re.search(r'<section id="api-', html[start+10:])
    part = html[start: start+10+nxt.start() if nxt else len(html)]
    assert 'Details' in part and '<table' in part, f"{name}: no parameter table"
    rows = re.findall(r'<tr[^>]*>(.*?)</tr>', part.split('<table', 1)[1].split('</table>', 1)[0], re.S)[1:]
    cells = [re.findall(r'<td[^>]*>(.*?)</td>', r, re.S) for r in rows]
    assert cells, f"{name}: empty parameter table"
    undocumented = [re.sub('<[^>]+>', '', c[0]).strip() for c in cells
                    if len(c) == 4 and not re.sub('<[^>]+>', '', c[3]).strip() and 'Returns' not in c[0]]
    assert not undocumented, f"{name}: parameters without a docments line: {undocumented}"

def test_api_screenshot(server, browser):
    rel = entry_page('histo_dls')
    anchor = next(i for i in ids_in(rel) if i.startswith('api-') and i.endswith('-histo-dls'))
    r = Visitor(browser)(f"{server}{rel}#{anchor}", shot=site/'screenshot-api.png')
    assert not r['errors'] and (site/'screenshot-api.png').stat().st_size > 10_000
