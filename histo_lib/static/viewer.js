// histo view: the slide list and one slide in OpenSeadragon, with the heat map, outlines and the probability under the pointer.
// The URL's hash (#slide=NAME&x=..&y=..&z=..&opacity=..) names the slide and the view, so a reload or a shared link shows the same.
"use strict";
const $ = id => document.getElementById(id);
const enc = encodeURIComponent;
const state = {rows: [], sort: {key: 'max', dir: -1}, cur: null, desc: null, outlines: {regions: null, truth: null}, restoring: null};
const viewer = OpenSeadragon({
  element: $('view'), prefixUrl: '/static/openseadragon/images/', drawer: 'canvas', showNavigator: true,
  imageLoaderLimit: 8, maxZoomPixelRatio: 4, visibilityRatio: 0.5, gestureSettingsMouse: {clickToZoom: false},
});
const overlay = document.createElement('canvas');
overlay.id = 'overlay';
viewer.canvas.appendChild(overlay);

function hashParams() { return new URLSearchParams(location.hash.slice(1)); }
function fmt(v, key) {
  if (v === null || v === undefined) return '';
  return typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v);
}

// --- the list ------------------------------------------------------------------------------------------------------
function renderList() {
  const {key, dir} = state.sort;
  const rows = state.rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return a.name < b.name ? -1 : 1;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  const rep = state.rows.some(r => r.label !== null || r.lesions !== null || r.hits !== null);
  document.querySelectorAll('#slides .rep').forEach(th => th.hidden = !rep);
  document.querySelectorAll('#slides th').forEach(th => th.className = (th.classList.contains('rep') ? 'rep ' : '') +
    (th.dataset.key === key ? (dir > 0 ? 'asc' : 'desc') : ''));
  const body = $('slides').tBodies[0];
  body.replaceChildren(...rows.map(r => {
    const tr = document.createElement('tr');
    tr.dataset.name = r.name;
    if (r.error) { tr.classList.add('bad'); tr.title = r.error; }
    if (r.name === state.cur) tr.classList.add('current');
    const a = document.createElement('a');
    a.href = '#slide=' + enc(r.name); a.textContent = r.name + (r.error ? ' \u26a0' : '');  // the row's title holds the error
    const cells = [a, ...['max', 'n_tumour', 'n_regions'].map(k => fmt(r[k])), ...(rep ? ['label', 'lesions', 'hits'].map(k => fmt(r[k])) : [])];
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      if (i) { td.className = 'num'; td.textContent = c; } else td.appendChild(c);
      tr.appendChild(td);
    });
    return tr;
  }));
  return rows;
}

document.querySelectorAll('#slides th').forEach(th => th.addEventListener('click', () => {
  const k = th.dataset.key;
  state.sort = {key: k, dir: state.sort.key === k ? -state.sort.dir : (k === 'name' ? 1 : -1)};
  renderList();
}));

// --- one slide -----------------------------------------------------------------------------------------------------
function showError(msg) {
  $('error').hidden = !msg; $('error').textContent = msg || '';
  $('view').style.display = msg ? 'none' : '';
}

async function getJSON(url) {
  const r = await fetch(url);
  return r.ok ? r.json() : null;
}

async function openSlide(name, view) {
  state.cur = name; state.desc = null; state.outlines = {regions: null, truth: null};
  renderList();
  $('title').textContent = name;
  const d = await getJSON('/api/slides/' + enc(name));
  if (state.cur !== name) return;  // another slide was chosen meanwhile
  if (!d || d.error) { viewer.close(); showError(d ? d.error : `no slide named ${name}`); return; }
  showError(null);
  state.desc = d; state.restoring = view;
  $('truth-box').hidden = !d.truth;
  $('det-box').hidden = !(d.detections && d.detections.length);
  $('title').textContent = `${name}: ${d.width} x ${d.height} px` + (d.row.max !== null ? `, score ${d.row.max.toFixed(3)}` : '');
  viewer.open({Image: {xmlns: 'http://schemas.microsoft.com/deepzoom/2008', Url: `/tiles/${enc(name)}_files/`, Format: 'jpeg',
                       Overlap: String(d.overlap), TileSize: String(d.tile_size), Size: {Width: String(d.width), Height: String(d.height)}}});
  for (const kind of ['regions', 'truth']) if (d[kind]) getJSON(`/outlines/${enc(name)}/${kind}.geojson`).then(g => {
    if (state.cur === name) { state.outlines[kind] = g; draw(); }
  });
}

viewer.addHandler('open', () => {
  const d = state.desc;
  if (!d) return;
  if (d.grid && d.grid.length) {
    const W = d.width, cols = d.grid[0].length;
    viewer.addTiledImage({tileSource: {type: 'image', url: `/heat/${enc(d.name)}.png`}, x: d.offset / W, y: d.offset / W,
                          width: cols * d.stride_l0 / W, opacity: Number($('opacity').value)});
  }
  const v = state.restoring; state.restoring = null;
  if (v && isFinite(v.z)) { viewer.viewport.zoomTo(v.z, null, true); viewer.viewport.panTo(new OpenSeadragon.Point(v.x, v.y), true); }
  draw();
});

function slideImage() { return viewer.world.getItemCount() ? viewer.world.getItemAt(0) : null; }
function heatImage() { return viewer.world.getItemCount() > 1 ? viewer.world.getItemAt(1) : null; }

// --- outlines: one canvas over the viewer, redrawn in image coordinates at every change of view ------------------------
function draw() {
  const w = viewer.container.clientWidth, h = viewer.container.clientHeight, r = window.devicePixelRatio || 1;
  if (overlay.width !== Math.round(w * r) || overlay.height !== Math.round(h * r)) {
    overlay.width = Math.round(w * r); overlay.height = Math.round(h * r);
    overlay.style.width = w + 'px'; overlay.style.height = h + 'px';
  }
  const ctx = overlay.getContext('2d');
  ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.clearRect(0, 0, overlay.width, overlay.height);
  const im = slideImage();
  if (!im || !state.desc) return;
  const p0 = im.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
  const p1 = im.imageToViewerElementCoordinates(new OpenSeadragon.Point(state.desc.width, 0));
  const s = (p1.x - p0.x) / state.desc.width;
  ctx.setTransform(s * r, 0, 0, s * r, p0.x * r, p0.y * r);
  // regions: cyan; truth: green dashed, its exclusion polygons (classification 'Exclusion') grey dotted
  const styles = [['regions', false, '#00e5ff', []], ['truth', false, '#00c853', [8, 5]], ['truth', true, '#9e9e9e', [2, 4]]];
  for (const [kind, excl, colour, dash] of styles) {
    const g = state.outlines[kind];
    if (!g || !$('show-' + kind).checked) continue;
    ctx.strokeStyle = colour; ctx.lineWidth = 2.5 / s; ctx.setLineDash(dash.map(v => v / s));
    ctx.beginPath();
    for (const f of g.features || []) {
      const cls = ((f.properties || {}).classification || {}).name;
      if ((cls === 'Exclusion') !== excl) continue;
      const geom = f.geometry || {};
      const polys = geom.type === 'Polygon' ? [geom.coordinates] : geom.type === 'MultiPolygon' ? geom.coordinates : [];
      for (const ring of polys.flat()) ring.forEach(([x, y], i) => i ? ctx.lineTo(x, y) : ctx.moveTo(x, y));
    }
    ctx.stroke();
  }
  const det = state.desc.detections || [];
  if (det.length && $('show-detections').checked) {  // lesion candidates: yellow rings 7 screen pixels across
    ctx.strokeStyle = '#ffd600'; ctx.lineWidth = 2 / s; ctx.setLineDash([]);
    ctx.beginPath();
    for (const [x, y] of det) { ctx.moveTo(x + 7 / s, y); ctx.arc(x, y, 7 / s, 0, 2 * Math.PI); }
    ctx.stroke();
  }
}
viewer.addHandler('update-viewport', draw);
viewer.addHandler('resize', draw);
['show-regions', 'show-truth', 'show-detections'].forEach(id => $(id).addEventListener('change', draw));

// --- the probability under the pointer ------------------------------------------------------------------------------
function probAt(pos) {
  const d = state.desc, im = slideImage();
  if (!d || !im || !d.grid) return 'no heat map';
  const p = im.viewerElementToImageCoordinates(pos);
  const c = Math.floor((p.x - d.offset) / d.stride_l0), r = Math.floor((p.y - d.offset) / d.stride_l0);
  if (p.x < 0 || p.y < 0 || p.x >= d.width || p.y >= d.height) return 'outside the slide';
  if (r < 0 || c < 0 || r >= d.grid.length || c >= d.grid[0].length) return 'between tiles';
  const v = d.grid[r][c];
  return `tile (${r}, ${c}): ` + (v === null ? 'glass, not predicted' : `P = ${v.toFixed(3)}`);
}
new OpenSeadragon.MouseTracker({element: viewer.canvas, moveHandler: e => { $('prob').textContent = probAt(e.position); }});

// --- the URL --------------------------------------------------------------------------------------------------------
function saveView() {
  if (!state.cur || !state.desc) return;
  const c = viewer.viewport.getCenter(), q = new URLSearchParams({slide: state.cur});
  q.set('x', c.x.toFixed(5)); q.set('y', c.y.toFixed(5)); q.set('z', viewer.viewport.getZoom().toFixed(4));
  q.set('opacity', $('opacity').value);
  history.replaceState(null, '', '#' + q.toString());
}
viewer.addHandler('animation-finish', saveView);
$('opacity').addEventListener('input', () => { const h = heatImage(); if (h) h.setOpacity(Number($('opacity').value)); saveView(); });

function fromHash() {
  const q = hashParams(), name = q.get('slide');
  if (q.has('opacity')) $('opacity').value = q.get('opacity');
  const ok = state.rows.filter(r => !r.error);
  const want = name !== null ? name : (ok.length ? renderList().find(r => !r.error).name : state.rows.length ? state.rows[0].name : null);
  if (want === null) return;
  const view = q.has('z') ? {x: Number(q.get('x')), y: Number(q.get('y')), z: Number(q.get('z'))} : null;
  if (want !== state.cur || view) openSlide(want, view);
}
window.addEventListener('hashchange', () => { if (hashParams().get('slide') !== state.cur) fromHash(); });

(async () => {
  const l = await getJSON('/api/slides');
  if (!l) { $('list-error').hidden = false; $('list-error').textContent = 'the slide list could not be read'; return; }
  state.rows = l.slides; renderList(); fromHash();
})();
