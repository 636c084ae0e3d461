import type { ReadinessCell, ReadinessReport, ReadinessRow, ReadinessStatus } from '../domain/readiness.ts';

/** A cell that is not ready: what a person reading the report must act on (or wait for). */
export interface Gap {
  row: ReadinessRow;
  /** Index of the row in `report.rows`. */
  rowIndex: number;
  cell: ReadinessCell;
  /** Index of the cell's region in `report.drRegions`. */
  column: number;
}

/** Worst first: a failed copy needs a person, a missing one a re-drive; drift is usable, in progress may fix itself. */
export const GAP_ORDER: readonly Exclude<ReadinessStatus, 'ready'>[] = ['failed', 'missing', 'drifted', 'in-progress'];

const RANK = Object.fromEntries(GAP_ORDER.map((s, i) => [s, i])) as Record<ReadinessStatus, number>;

/** Every cell not ready, worst status first, then the oldest image first (it has been exposed the longest). */
export function gapsOf(report: ReadinessReport): Gap[] {
  const gaps: Gap[] = [];
  report.rows.forEach((row, rowIndex) => {
    for (const cell of row.cells)
      if (cell.status !== 'ready') gaps.push({ row, rowIndex, cell, column: report.drRegions.indexOf(cell.region) });
  });
  return gaps.sort(
    (a, b) =>
      (RANK[a.cell.status] ?? 9) - (RANK[b.cell.status] ?? 9) ||
      b.row.ageSeconds - a.row.ageSeconds ||
      a.row.sourceImageId.localeCompare(b.row.sourceImageId) ||
      a.column - b.column,
  );
}
