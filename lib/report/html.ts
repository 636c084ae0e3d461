import type { Drift, ReadinessReport, ReadinessStatus } from '../domain/readiness.ts';
import { drRegionLabel, STATUSES } from '../domain/readiness.ts';
import { permissionKey } from '../domain/image.ts';
import { familyName } from '../domain/retention-planner.ts';
import { formatDuration, formatPercent, STATUS_LABEL, whereOf } from './format.ts';
import { gapsOf, type Gap } from './gaps.ts';
import { plural } from '../domain/text.ts';

/** Cell colours; also the legend. Exported so tests check what a person sees against one definition. */
export const STATUS_COLOR: Record<ReadinessStatus, { background: string; text: string }> = {
  ready: { background: '#1a7f37', text: '#ffffff' },
  'in-progress': { background: '#0969da', text: '#ffffff' },
  missing: { background: '#cf222e', text: '#ffffff' },
  failed: { background: '#82071e', text: '#ffffff' },
  drifted: { background: '#d4a72c', text: '#1f2328' },
};

/**
 * One self-contained HTML file (no external scripts, styles, fonts or images; a CSP forbids them) that a
 * person can open from disk or an S3 link. It leads with the summary and the gap list (every cell not ready, its
 * reason in plain text, worst first), then the full matrix; filters by state, region and image/name/family narrow
 * both, and a click on a matrix cell shows its copy and drift. The report is embedded once as compact JSON (repeated
 * strings interned) and drawn by a short inline script on load: 10,000 images × 3 regions stay near 1.5 MB.
 */
export function renderHtml(report: ReadinessReport): string {
  const s = report.summary;
  const gaps = gapsOf(report);
  const data = embed(report, gaps);
  const stateFilters = STATUSES.map(
    (st) =>
      `<label class="chip s-${st}"><input type="checkbox" name="state" value="${st}" checked> ${text(STATUS_LABEL[st])}: ${s.counts[st]}</label>`,
  ).join(' ');
  const regionOptions = report.drRegions
    .map((r, i) => `<option value="${i}">${text(drRegionLabel(report, r))}</option>`)
    .join('');
  const statusCss = (Object.entries(STATUS_COLOR) as [ReadinessStatus, { background: string; text: string }][])
    .map(([st, c]) => `.s-${st}{background:${c.background};color:${c.text}}`)
    .join('\n');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DR readiness — ${text(report.policy.name)} — ${text(report.generatedAt)}</title>
<style>
${PAGE_CSS}
${statusCss}
</style>
</head>
<body>
<h1>DR readiness: ${text(report.policy.name)}</h1>
<p class="sub">Generated ${text(report.generatedAt)} · policy version <code>${text(report.policy.version)}</code> · sources ${text(report.sourceRegions.join(', '))} · DR ${text(report.drRegions.map((r) => drRegionLabel(report, r)).join(', '))}</p>
<div class="summary">
<div id="ready-ratio"><b>${text(formatPercent(s.readyRatio))}</b>ready</div>
<div id="not-ready"><b>${s.imagesNotReady}</b>of ${plural(s.images, 'image')} not ready everywhere</div>
<div id="oldest"><b>${text(s.imagesNotReady ? formatDuration(s.oldestUnprotectedAgeSeconds) : 'none')}</b>oldest unprotected image</div>
<div id="lag"><b>${text(formatDuration(s.medianLagSeconds))}</b>median lag (max ${text(formatDuration(s.maxLagSeconds))})</div>
</div>
<form id="filters" role="search" aria-label="Filter the report">
<fieldset><legend class="sr">State</legend>${stateFilters}</fieldset>
<label>DR region <select name="region"><option value="">all</option>${regionOptions}</select></label>
<label>Image, name or family <input type="search" name="q" list="families" autocomplete="off"></label>
<datalist id="families"></datalist>
</form>
<noscript><p>The gap list and the matrix are drawn by this page's script, which is not running; <code>ami-dr readiness --format markdown</code> prints the same report without one.</p></noscript>
<h2 id="gaps-title">Not ready: ${gaps.length ? `${plural(gaps.length, 'cell')} of ${s.cells.toLocaleString('en-US')}, worst first` : 'nothing'}</h2>${gaps.length > 20 ? '\n<p class="count"><a href="#matrix-title">Skip to all images</a></p>' : ''}
<p class="count" id="gaps-count" aria-live="polite"></p>
<table id="gaps" aria-labelledby="gaps-title">
<thead><tr><th scope="col">Status</th><th scope="col">Image</th><th scope="col">DR region</th><th scope="col">Age</th><th scope="col">Reason</th></tr></thead>
<tbody></tbody>
</table>
<h2 id="matrix-title">All images</h2>
<p class="count" id="matrix-count" aria-live="polite"></p>
<table id="matrix" role="table" aria-labelledby="matrix-title">
<thead role="rowgroup"></thead>
<tbody role="rowgroup"></tbody>
</table>
<section id="details" aria-live="polite" hidden></section>
<script type="application/json" id="report-data">${json(data)}</script>
<script>
${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/** The page's fixed styles; the status colours are added from STATUS_COLOR. */
const PAGE_CSS = `body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:24px 0 4px}
.sub,.count{color:#59636e;margin:0 0 12px}
.summary{display:flex;gap:24px;flex-wrap:wrap;margin:0 0 12px}
.summary div{border:1px solid #d1d9e0;border-radius:6px;padding:8px 12px}
.summary b{display:block;font-size:20px}
.chip{display:inline-block;border-radius:10px;padding:2px 8px;margin:0 4px 4px 0;font-size:12px;white-space:nowrap}
#filters{display:flex;gap:8px 16px;flex-wrap:wrap;align-items:center;border:1px solid #d1d9e0;border-radius:6px;padding:8px 12px;position:sticky;top:0;background:#fff;z-index:2}
#filters fieldset{border:0;margin:0;padding:0}
#filters label.chip{cursor:pointer;font-size:13px}
#filters input[type=search]{width:220px}
table{border-collapse:separate;border-spacing:3px}
th{text-align:left;font-weight:600;padding:4px 8px;vertical-align:top}
th .name,th .meta{display:block;font-weight:400;color:#59636e;font-size:12px}
#gaps{border-collapse:collapse}
#gaps td,#gaps tbody th{padding:6px 8px;vertical-align:top;border-top:1px solid #d1d9e0}
#gaps td.reason{max-width:640px}
#gaps .chip{margin:0}
#matrix,#matrix thead,#matrix tbody{display:block}
#matrix tr{display:grid;grid-template-columns:minmax(240px,360px) repeat(var(--cols,1),130px);gap:3px;margin-bottom:3px}
#matrix tbody tr{content-visibility:auto;contain-intrinsic-size:auto 60px}
#matrix th{overflow-wrap:anywhere}
td.cell{padding:6px 10px;border-radius:4px;cursor:pointer}
td.cell small{display:block;opacity:.85}
td.cell:focus,td.cell.selected{outline:3px solid #1f2328;outline-offset:1px}
td.none{color:#59636e;text-align:center;padding:6px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
#details{position:fixed;right:16px;bottom:16px;background:#fff;border:1px solid #1f2328;border-radius:6px;padding:12px;max-width:560px;box-shadow:0 4px 16px rgba(0,0,0,.2);z-index:3}
#details dl{margin:0}
#details dt{font-weight:600;float:left;clear:left;width:110px}
#details dd{margin:0 0 4px 120px;overflow-wrap:anywhere}
#details button{float:right}`;

/** The page's script: reads the embedded report, draws the gap list and the matrix, applies the filters, shows a cell's details. */
const PAGE_SCRIPT = `(function () {
  var D = JSON.parse(document.getElementById('report-data').textContent), S = D.s, R = D.r, T = D.t, n = R.length;
  var form = document.getElementById('filters'), boxes = form.querySelectorAll('input[name=state]');
  var gapBody = document.querySelector('#gaps tbody'), matrix = document.getElementById('matrix');
  var panel = document.getElementById('details'), f = {};
  function esc(v) { return String(v).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); }
  function status(c) { return T[c[0]]; }
  function image(row) { return '<code>' + esc(row[0]) + '</code><span class="name">' + esc(row[1]) + '</span><span class="meta">' + esc(S[row[2]]) + ' · ' + esc(S[row[3]]) + ' old</span>'; }
  function read() {
    f.states = {}; f.all = true;
    for (var i = 0; i < boxes.length; i++) { if (boxes[i].checked) f.states[boxes[i].value] = 1; else f.all = false; }
    f.col = form.elements.region.value === '' ? -1 : +form.elements.region.value;
    f.q = form.elements.q.value.trim().toLowerCase();
  }
  function named(row) { return !f.q || (row[0] + ' ' + row[1] + ' ' + S[row[4]]).toLowerCase().indexOf(f.q) >= 0; }
  function drawGaps() {
    var out = [];
    for (var k = 0; k < D.g.length; k++) {
      var row = D.i[Math.floor(D.g[k] / n)], j = D.g[k] % n, c = row[5][j], st = status(c);
      if (!f.states[st[0]] || (f.col >= 0 && j !== f.col) || !named(row)) continue;
      out.push('<tr><td><span class="chip s-' + st[0] + '">' + esc(st[1]) + '</span></td><th scope="row"><code>' + esc(row[0]) + '</code><span class="name">' + esc(row[1]) + ' · ' + esc(S[row[2]]) + '</span></th><td>' + esc(R[j]) + '</td><td>' + esc(S[row[3]]) + '</td><td class="reason">' + esc(S[c[4]]) + '</td></tr>');
    }
    gapBody.innerHTML = out.join('') || '<tr><td colspan="5">' + (D.g.length ? 'No cell that is not ready matches the filters.' : 'Every image is ready in every DR region.') + '</td></tr>';
    document.getElementById('gaps-count').textContent = out.length === D.g.length ? '' : 'Showing ' + out.length + ' of ' + D.g.length + '.';
  }
  function drawMatrix() {
    var cols = [], out = [];
    for (var j = 0; j < n; j++) if (f.col < 0 || f.col === j) cols.push(j);
    matrix.style.setProperty('--cols', cols.length);
    matrix.tHead.innerHTML = '<tr role="row"><th scope="col" role="columnheader">Image</th>' + cols.map(function (j) { return '<th scope="col" role="columnheader">' + esc(R[j]) + '</th>'; }).join('') + '</tr>';
    for (var r = 0; r < D.i.length; r++) {
      var row = D.i[r], cells = '', hit = f.all;
      if (!named(row)) continue;
      for (var x = 0; x < cols.length; x++) {
        var c = row[5][cols[x]];
        if (!c) { cells += '<td class="none" role="cell">—</td>'; continue; }
        var st = status(c);
        if (f.states[st[0]]) hit = true;
        cells += '<td class="cell s-' + st[0] + '" data-row="' + r + '" data-col="' + cols[x] + '" tabindex="0" role="button" title="' + esc(st[1] + ' · lag ' + S[c[1]] + (c[4] ? ' · ' + S[c[4]] : '') + (c[6] ? ' · ' + S[c[6]] : '')) + '">' + esc(st[1]) + '<small>' + esc(S[c[1]]) + (c[6] ? ' · ' + esc(S[c[6]]) : '') + '</small></td>';
      }
      if (hit) out.push('<tr role="row"><th scope="row" role="rowheader">' + image(row) + '</th>' + cells + '</tr>');
    }
    matrix.tBodies[0].innerHTML = out.join('') || '<tr role="row"><td role="cell">' + (D.i.length ? 'No image matches the filters.' : 'No images in scope.') + '</td></tr>';
    document.getElementById('matrix-count').textContent = 'Showing ' + out.length + ' of ' + D.i.length + ' images.';
  }
  var drawn;
  function draw() {
    read();
    // 'ready' changes only the matrix: a long gap list is not drawn again for it.
    var key = JSON.stringify([T.map(function (t) { return t[0] !== 'ready' && !!f.states[t[0]]; }), f.col, f.q]);
    if (key !== drawn) { drawn = key; drawGaps(); }
    drawMatrix();
  }
  function show(td) {
    var row = D.i[+td.dataset.row], j = +td.dataset.col, c = row[5][j], prev = matrix.querySelector('td.selected');
    if (prev) prev.classList.remove('selected');
    td.classList.add('selected');
    var rows = [['Image', row[0] + ' (' + S[row[2]] + ')'], ['Name', row[1]], ['Region', R[j]], ['Status', status(c)[1]], ['Lag', S[c[1]]]];
    if (c[2]) rows.push(['Copy', c[2] + (c[3] ? ' (' + S[c[3]] + ')' : '')]);
    if (c[4]) rows.push(['Reason', S[c[4]]]);
    if (c[6]) rows.push(['Drill', S[c[6]]]);
    for (var i = 0; c[5] && i < c[5].length; i += 2) rows.push(['Drift: ' + S[c[5][i]], S[c[5][i + 1]]]);
    panel.innerHTML = '<button type="button">Close</button><dl>' + rows.map(function (p) { return '<dt>' + esc(p[0]) + '</dt><dd class="' + esc(p[0].toLowerCase().split(':')[0]) + '">' + esc(p[1]) + '</dd>'; }).join('') + '</dl>';
    panel.hidden = false;
  }
  var families = {}, options = [];
  for (var r = 0; r < D.i.length; r++) families[S[D.i[r][4]]] = 1;
  for (var name in families) options.push('<option value="' + esc(name) + '">');
  document.getElementById('families').innerHTML = options.sort().join('');
  form.addEventListener('change', draw);
  form.addEventListener('submit', function (e) { e.preventDefault(); });
  var timer;
  form.elements.q.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(draw, 150); });
  matrix.addEventListener('click', function (e) { var td = e.target.closest('td.cell'); if (td) show(td); });
  matrix.addEventListener('keydown', function (e) { if ((e.key === 'Enter' || e.key === ' ') && e.target.matches('td.cell')) { e.preventDefault(); show(e.target); } });
  panel.addEventListener('click', function (e) { if (e.target.closest('button')) { panel.hidden = true; var sel = matrix.querySelector('td.selected'); if (sel) sel.classList.remove('selected'); } });
  draw();
})();
`;

/**
 * The report as the page's script reads it, every repeated string stored once in `s` (index 0 is ''):
 *   t: [status, label] by status code      r: DR regions        g: gaps, worst first, as row × regions + column
 *   i: rows [imageId, name, s(source region), s(age), s(family), cells by DR region]
 *   cell: 0 when the DR region is the source's own, else [status code, s(lag), copy id, s(copy state), s(reason),
 *         [s(drift kind), s(drift detail), …] or 0, s(last drill: "verified 3 days ago")?]
 */
function embed(report: ReadinessReport, gaps: Gap[]) {
  const strings = [''];
  const index = new Map<string, number>([['', 0]]);
  const str = (value: string | undefined): number => {
    if (!value) return 0;
    let i = index.get(value);
    if (i === undefined) {
      i = strings.length;
      strings.push(value);
      index.set(value, i);
    }
    return i;
  };
  const code = Object.fromEntries(STATUSES.map((st, i) => [st, i])) as Record<ReadinessStatus, number>;
  const rows = report.rows.map((row) => [
    row.sourceImageId,
    row.name,
    str(whereOf(report, row)),
    str(formatDuration(row.ageSeconds)),
    str(familyName(row.name)),
    report.drRegions.map((region) => {
      const cell = row.cells.find((c) => c.region === region);
      if (!cell) return 0;
      const out: (number | string | number[])[] = [
        code[cell.status],
        str(formatDuration(cell.lagSeconds)),
        cell.copyImageId ?? '',
        str(cell.copyState),
        str(cell.reason),
      ];
      out.push(cell.drift.length ? cell.drift.flatMap((d) => [str(d.kind), str(driftDetail(d))]) : 0);
      out.push(str(cell.verified));
      // Trailing empties are left out: most cells are ready, with no reason.
      while (out.length > 2 && (out[out.length - 1] === 0 || out[out.length - 1] === '')) out.pop();
      return out;
    }),
  ]);
  return {
    t: STATUSES.map((st) => [st, STATUS_LABEL[st]]),
    // Labels: a region whose copies a DR account owns names the account.
    r: report.drRegions.map((r) => drRegionLabel(report, r)),
    g: gaps.map((g) => g.rowIndex * report.drRegions.length + g.column),
    i: rows,
    s: strings,
  };
}

function driftDetail(d: Drift): string {
  return d.kind === 'launch-permissions'
    ? `${d.detail} (add ${d.add.map(permissionKey).join(', ') || 'none'}; remove ${d.remove.map(permissionKey).join(', ') || 'none'})`
    : d.detail;
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const text = (s: string): string => s.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
/** JSON inside a script element: `<` escaped so no string can close the element. */
const json = (value: unknown): string =>
  JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
