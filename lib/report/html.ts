import type { ReadinessCell, ReadinessReport, ReadinessStatus } from '../domain/readiness.ts';
import { permissionKey } from '../domain/image.ts';
import { formatDuration, formatPercent, STATUS_LABEL } from './format.ts';
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
 * person can open from disk or an S3 link: the coloured matrix, reason and lag on hover (title) and on click
 * (a details panel).
 */
export function renderHtml(report: ReadinessReport): string {
  const s = report.summary;
  const details: CellDetails[][] = report.rows.map((row) =>
    report.drRegions.map((region) => {
      const cell = row.cells.find((c) => c.region === region);
      return cell ? detailsOf(row.sourceImageId, row.sourceRegion, row.name, cell) : { absent: true };
    }),
  );
  const rowsHtml = matrixRows(report);
  const legend = (Object.keys(STATUS_COLOR) as ReadinessStatus[])
    .map((st) => `<span class="chip s-${st}">${text(STATUS_LABEL[st])}: ${s.counts[st]}</span>`)
    .join(' ');
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
${BASE_CSS}
${statusCss}
</style>
</head>
<body>
<h1>DR readiness: ${text(report.policy.name)}</h1>
<p class="sub">Generated ${text(report.generatedAt)} · policy version <code>${text(report.policy.version)}</code> · sources ${text(report.sourceRegions.join(', '))} · DR ${text(report.drRegions.join(', '))}</p>
<div class="summary">
<div id="ready-ratio"><b>${text(formatPercent(s.readyRatio))}</b>ready</div>
<div id="not-ready"><b>${s.imagesNotReady}</b>of ${plural(s.images, 'image')} not ready everywhere</div>
<div id="oldest"><b>${text(s.imagesNotReady ? formatDuration(s.oldestUnprotectedAgeSeconds) : 'none')}</b>oldest unprotected image</div>
<div id="lag"><b>${text(formatDuration(s.medianLagSeconds))}</b>median lag (max ${text(formatDuration(s.maxLagSeconds))})</div>
</div>
<div class="legend">${legend}</div>
<table id="matrix">
<thead><tr><th scope="col">Image</th>${report.drRegions.map((r) => `<th scope="col">${text(r)}</th>`).join('')}</tr></thead>
<tbody>
${rowsHtml || `<tr><td colspan="${report.drRegions.length + 1}">No images in scope.</td></tr>`}
</tbody>
</table>
<section id="details" aria-live="polite">Click a cell for its details.</section>
<script type="application/json" id="cell-data">${json(details)}</script>
<script>
${PANEL_SCRIPT}
</script>
</body>
</html>
`;
}

/** One table row per source image, one cell per DR region (its status and lag; the reason on hover). */
function matrixRows(report: ReadinessReport): string {
  return report.rows
    .map((row, i) => {
      const cells = report.drRegions
        .map((region, j) => {
          const cell = row.cells.find((c) => c.region === region);
          if (!cell) return '<td class="none">—</td>';
          const hover = `${STATUS_LABEL[cell.status]} · lag ${formatDuration(cell.lagSeconds)}${cell.reason ? ` · ${cell.reason}` : ''}`;
          return (
            `<td class="cell s-${cell.status}" data-status="${cell.status}" data-row="${i}" data-col="${j}" tabindex="0" role="button" ` +
            `title="${attr(hover)}">${text(STATUS_LABEL[cell.status])}<small>${text(formatDuration(cell.lagSeconds))}</small></td>`
          );
        })
        .join('');
      return (
        `<tr><th scope="row"><code>${text(row.sourceImageId)}</code><span class="name">${text(row.name)}</span>` +
        `<span class="meta">${text(row.sourceRegion)} · ${text(formatDuration(row.ageSeconds))} old</span></th>${cells}</tr>`
      );
    })
    .join('\n');
}

/** The page's fixed styles; the status colours follow them. */
const BASE_CSS = `body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#59636e;margin:0 0 16px}
.summary{display:flex;gap:24px;flex-wrap:wrap;margin:0 0 12px}
.summary div{border:1px solid #d1d9e0;border-radius:6px;padding:8px 12px}
.summary b{display:block;font-size:20px}
.chip{display:inline-block;border-radius:10px;padding:2px 8px;margin:0 4px 4px 0;font-size:12px}
table{border-collapse:separate;border-spacing:3px;margin-top:12px}
th{text-align:left;font-weight:600;padding:4px 8px;vertical-align:top}
th .name,th .meta{display:block;font-weight:400;color:#59636e;font-size:12px}
td.cell{min-width:120px;padding:6px 10px;border-radius:4px;cursor:pointer;vertical-align:top}
td.cell small{display:block;opacity:.85}
td.cell:focus,td.cell.selected{outline:3px solid #1f2328;outline-offset:1px}
td.none{color:#59636e;text-align:center}
#details{margin-top:16px;border:1px solid #d1d9e0;border-radius:6px;padding:12px;max-width:760px;min-height:24px}
#details dt{font-weight:600;float:left;clear:left;width:110px}
#details dd{margin:0 0 4px 120px}`;

/** Shows a clicked (or Enter-ed) cell's details in the panel, from the JSON embedded in the page. */
const PANEL_SCRIPT = `(function () {
  var data = JSON.parse(document.getElementById('cell-data').textContent);
  var panel = document.getElementById('details');
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; }); }
  function show(td) {
    var d = data[+td.dataset.row][+td.dataset.col];
    var prev = document.querySelector('td.selected');
    if (prev) prev.classList.remove('selected');
    td.classList.add('selected');
    var rows = [['Image', d.image + ' (' + d.sourceRegion + ')'], ['Name', d.name], ['Region', d.region], ['Status', d.status], ['Lag', d.lag]];
    if (d.copy) rows.push(['Copy', d.copy + (d.copyState ? ' (' + d.copyState + ')' : '')]);
    if (d.reason) rows.push(['Reason', d.reason]);
    for (var i = 0; i < d.drift.length; i++) rows.push(['Drift: ' + d.drift[i].kind, d.drift[i].detail]);
    panel.innerHTML = '<dl>' + rows.map(function (r) { return '<dt>' + esc(r[0]) + '</dt><dd class="' + esc(r[0].toLowerCase().split(':')[0]) + '">' + esc(r[1]) + '</dd>'; }).join('') + '</dl>';
  }
  var cells = document.querySelectorAll('td.cell');
  for (var i = 0; i < cells.length; i++) {
    cells[i].addEventListener('click', function (e) { show(e.currentTarget); });
    cells[i].addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); show(e.currentTarget); } });
  }
})();`;

interface CellDetails {
  absent?: boolean;
  image?: string;
  sourceRegion?: string;
  name?: string;
  region?: string;
  status?: string;
  lag?: string;
  copy?: string;
  copyState?: string;
  reason?: string;
  drift?: { kind: string; detail: string }[];
}

function detailsOf(image: string, sourceRegion: string, name: string, cell: ReadinessCell): CellDetails {
  return {
    image,
    sourceRegion,
    name,
    region: cell.region,
    status: STATUS_LABEL[cell.status],
    lag: formatDuration(cell.lagSeconds),
    copy: cell.copyImageId,
    copyState: cell.copyState,
    reason: cell.reason,
    drift: cell.drift.map((d) => ({
      kind: d.kind,
      detail:
        d.kind === 'launch-permissions'
          ? `${d.detail} (add ${d.add.map(permissionKey).join(', ') || 'none'}; remove ${d.remove.map(permissionKey).join(', ') || 'none'})`
          : d.detail,
    })),
  };
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const text = (s: string): string => s.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
const attr = text;
/** JSON inside a script element: `<` escaped so no string can close the element. */
const json = (value: unknown): string =>
  JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
