import type { ReadinessReport, ReadinessStatus } from '../domain/readiness.ts';
import { alignColumns, cellText, formatDuration, formatPercent } from './format.ts';
import { plural } from '../domain/text.ts';

export interface TableOptions {
  color: boolean;
}

const ANSI: Record<ReadinessStatus, string> = {
  ready: '\u001b[32m',
  'in-progress': '\u001b[36m',
  missing: '\u001b[31m',
  failed: '\u001b[31;1m',
  drifted: '\u001b[33m',
};
const RESET = '\u001b[0m';

/** The terminal view: images down, DR regions across, then why each cell that is not ready is not. */
export function renderTable(report: ReadinessReport, options: TableOptions): string {
  const header = ['IMAGE', 'REGION', 'NAME', 'AGE', ...report.drRegions.map((r) => r.toUpperCase())];
  const statuses: (ReadinessStatus | undefined)[][] = [];
  const body = report.rows.map((row) => {
    const cells = report.drRegions.map((region) => row.cells.find((c) => c.region === region));
    statuses.push(cells.map((c) => c?.status));
    return [
      row.sourceImageId,
      row.sourceRegion,
      truncate(row.name, 40),
      formatDuration(row.ageSeconds),
      ...cells.map((c) => (c ? cellText(c) : '-')),
    ];
  });
  const aligned = alignColumns([header, ...body]);
  const lines = aligned.map((cols, i) =>
    cols
      .map((text, j) => {
        const status = i === 0 ? undefined : statuses[i - 1]?.[j - 4];
        return options.color && status ? `${ANSI[status]}${text}${RESET}` : text;
      })
      .join('  ')
      .trimEnd(),
  );
  if (report.rows.length === 0) lines.push('(no images in scope)');

  const notes = report.rows.flatMap((row) =>
    row.cells
      .filter((c) => c.status !== 'ready' && c.reason)
      .map((c) => `  ${row.sourceImageId} → ${c.region}: ${c.status}: ${c.reason}`),
  );
  if (notes.length) lines.push('', 'Not ready:', ...notes);

  const s = report.summary;
  lines.push(
    '',
    `${plural(s.images, 'image')} × ${plural(report.drRegions.length, 'DR region')}: ${s.counts.ready} ready, ${s.counts['in-progress']} in progress, ` +
      `${s.counts.missing} missing, ${s.counts.failed} failed, ${s.counts.drifted} drifted (${formatPercent(s.readyRatio)} ready)`,
    `Oldest unprotected image: ${s.imagesNotReady ? formatDuration(s.oldestUnprotectedAgeSeconds) : 'none'} · median lag ${formatDuration(s.medianLagSeconds)} · max lag ${formatDuration(s.maxLagSeconds)}`,
  );
  return `${lines.join('\n')}\n`;
}

function truncate(text: string, max: number): string {
  return [...text].length > max ? `${[...text].slice(0, max - 1).join('')}…` : text;
}
