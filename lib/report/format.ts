import type { ReadinessCell, ReadinessReport, ReadinessRow, ReadinessStatus } from '../domain/readiness.ts';

/** `3d 4h`, `2h 5m`, `4m 10s`, `12s`: two units are enough to read a lag at a glance. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  const first = units.findIndex(([, size]) => s >= size);
  if (first < 0) return '0s';
  const [bigName, bigSize] = units[first] as [string, number];
  const big = Math.floor(s / bigSize);
  const next = units[first + 1];
  const small = next ? Math.floor((s - big * bigSize) / next[1]) : 0;
  return next && small > 0 ? `${big}${bigName} ${small}${next[0]}` : `${big}${bigName}`;
}

export const formatPercent = (ratio: number): string => `${(Math.floor(ratio * 1000) / 10).toFixed(1)}%`;

export const STATUS_LABEL: Record<ReadinessStatus, string> = {
  ready: 'ready',
  'in-progress': 'in progress',
  missing: 'missing',
  failed: 'failed',
  drifted: 'drifted',
};

/** The one line a cell shows: status and lag. */
export const cellText = (cell: ReadinessCell): string =>
  `${STATUS_LABEL[cell.status]} ${formatDuration(cell.lagSeconds)}${cell.verified ? ` (${cell.verified})` : ''}`;

/** Pads columns to equal width (by code points, so colour codes added later do not count). */
export function alignColumns(rows: string[][]): string[][] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((row) =>
    row.map((c, i) => (i === row.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length))),
  );
}

/** Rows of more than one account: the renderings then name each row's account. */
export const isMultiAccount = (report: ReadinessReport): boolean =>
  new Set(report.rows.map((r) => r.account ?? '')).size > 1;

/** Where a source is: its region, and its account when the report spans several. */
export const whereOf = (report: ReadinessReport, row: ReadinessRow): string =>
  isMultiAccount(report) && row.account ? `${row.sourceRegion}, account ${row.account}` : row.sourceRegion;
