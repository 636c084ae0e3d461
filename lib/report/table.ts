import { drRegionLabel, type ReadinessReport, type ReadinessStatus } from '../domain/readiness.ts';
import { alignColumns, cellText, formatDuration, formatPercent, isMultiAccount, STATUS_LABEL } from './format.ts';
import { gapsOf } from './gaps.ts';
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

/** The terminal view: what is not ready and why (worst first), then images down, DR regions across, then totals. */
export function renderTable(report: ReadinessReport, options: TableOptions): string {
  const paint = (status: ReadinessStatus | undefined, text: string): string =>
    options.color && status ? `${ANSI[status]}${text}${RESET}` : text;
  const lines = [...notReady(report, paint)];
  const accounts = isMultiAccount(report);
  const header = [
    ...(accounts ? ['ACCOUNT'] : []),
    'IMAGE',
    'REGION',
    'NAME',
    'AGE',
    ...report.drRegions.map((r) => drRegionLabel(report, r).toUpperCase()),
  ];
  const first = header.length - report.drRegions.length;
  const statuses: (ReadinessStatus | undefined)[][] = [];
  const body = report.rows.map((row) => {
    const cells = report.drRegions.map((region) => row.cells.find((c) => c.region === region));
    statuses.push(cells.map((c) => c?.status));
    return [
      ...(accounts ? [row.account ?? ''] : []),
      row.sourceImageId,
      row.sourceRegion,
      truncate(row.name, 40),
      formatDuration(row.ageSeconds),
      ...cells.map((c) => (c ? cellText(c) : '-')),
    ];
  });
  const aligned = alignColumns([header, ...body]);
  for (const [i, cols] of aligned.entries())
    lines.push(
      cols
        .map((text, j) => paint(i === 0 ? undefined : statuses[i - 1]?.[j - first], text))
        .join('  ')
        .trimEnd(),
    );
  if (report.rows.length === 0) lines.push('(no images in scope)');

  const s = report.summary;
  lines.push(
    '',
    `${plural(s.images, 'image')} × ${plural(report.drRegions.length, 'DR region')}: ${s.counts.ready} ready, ${s.counts['in-progress']} in progress, ` +
      `${s.counts.missing} missing, ${s.counts.failed} failed, ${s.counts.drifted} drifted (${formatPercent(s.readyRatio)} ready)`,
    `Oldest unprotected image: ${s.imagesNotReady ? formatDuration(s.oldestUnprotectedAgeSeconds) : 'none'} · median lag ${formatDuration(s.medianLagSeconds)} · max lag ${formatDuration(s.maxLagSeconds)}`,
  );
  return `${lines.join('\n')}\n`;
}

/** The gaps as their own aligned table, ahead of the matrix, so they are read first; nothing when all is ready. */
function notReady(report: ReadinessReport, paint: (status: ReadinessStatus, text: string) => string): string[] {
  const gaps = gapsOf(report);
  if (!gaps.length) return [];
  const rows = alignColumns([
    ['STATUS', 'IMAGE', 'NAME', 'DR REGION', 'AGE', 'REASON'],
    ...gaps.map(({ row, cell }) => [
      STATUS_LABEL[cell.status],
      accountsOf(report, row.sourceImageId, row.account),
      truncate(row.name, 40),
      drRegionLabel(report, cell.region),
      formatDuration(row.ageSeconds),
      oneLine(cell.reason ?? ''),
    ]),
  ]);
  return [
    `Not ready (${gaps.length} of ${plural(report.summary.cells, 'cell')}):`,
    ...rows.map((cols, i) => {
      const status = gaps[i - 1]?.cell.status;
      return cols
        .map((text, j) => (j === 0 && status ? paint(status, text) : text))
        .join('  ')
        .trimEnd();
    }),
    '',
  ];
}

const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ');

function truncate(text: string, max: number): string {
  return [...text].length > max ? `${[...text].slice(0, max - 1).join('')}…` : text;
}

/** The image column of the gaps table: the image id, with its account when the report spans several. */
const accountsOf = (report: ReadinessReport, imageId: string, account: string | undefined): string =>
  isMultiAccount(report) && account ? `${imageId} (${account})` : imageId;
