import type { METRIC } from '../observability.ts';
import type { ReadinessReport } from './readiness.ts';

/** The metric names (lib/observability.ts METRIC) and units readiness publishes; alarms and the dashboard read these. */
export interface ReadinessMetric {
  name: (typeof METRIC)[keyof typeof METRIC];
  unit: 'None' | 'Count' | 'Seconds';
  value: number;
}

/**
 * One data point per run for each: the ratio of ready cells (0..1), images not ready in every DR region, the age of
 * the oldest of those, the largest lag (copies not there yet count from their source's creation), and re-drives.
 */
export function readinessMetrics(report: Pick<ReadinessReport, 'summary'>, redriven: number): ReadinessMetric[] {
  const s = report.summary;
  return [
    { name: 'ReadyRatio', unit: 'None', value: s.readyRatio },
    { name: 'ImagesNotReady', unit: 'Count', value: s.imagesNotReady },
    { name: 'OldestUnprotectedAgeSeconds', unit: 'Seconds', value: s.oldestUnprotectedAgeSeconds },
    { name: 'ReplicationLagSeconds', unit: 'Seconds', value: s.maxLagSeconds },
    { name: 'ReplicationsRedriven', unit: 'Count', value: redriven },
  ];
}
