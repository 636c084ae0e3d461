import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export const SERVICE = 'ami-dr';
export const METRICS_NAMESPACE = 'ami-dr';

/** Every metric ami-dr emits. Alarms in serverless.yml may only watch names listed here (a test checks it). */
export const METRIC = {
  replicationSucceeded: 'ReplicationSucceeded',
  replicationFailed: 'ReplicationFailed',
  replicationLagSeconds: 'ReplicationLagSeconds',
  readyRatio: 'ReadyRatio',
  imagesNotReady: 'ImagesNotReady',
  oldestUnprotectedAgeSeconds: 'OldestUnprotectedAgeSeconds',
  redriven: 'ReplicationsRedriven',
  imagesDeprecated: 'ImagesDeprecated',
  imagesRemoved: 'ImagesRemoved',
  gibFreed: 'GiBFreed',
  retentionErrors: 'RetentionErrors',
  drillsRun: 'DrillsRun',
  drillsPassed: 'DrillsPassed',
  drillsFailed: 'DrillsFailed',
  drillInstanceMinutes: 'DrillInstanceMinutes',
} as const;

export { MetricUnit };

export const logger = new Logger({ serviceName: SERVICE });
// Pure: a bundle that never publishes a metric (startScheduled) leaves the Metrics instance, and its code, out.
export const metrics = /* @__PURE__ */ new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE });
