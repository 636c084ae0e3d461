import type { ReadinessReport } from '../domain/readiness.ts';

/** The report as scripts read it: the report object as computed, keys in a fixed order, versioned. */
export function renderJson(report: ReadinessReport): string {
  return `${JSON.stringify({ schemaVersion: 1, ...report }, null, 2)}\n`;
}
