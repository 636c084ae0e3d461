import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../lib/domain/policy.ts';
import { METRIC, METRICS_NAMESPACE } from '../../lib/observability.ts';
import { ensurePackaged, lambdaResources, ROOT, type CfnResource, type Template } from './packaged.ts';

let template: Template;

beforeAll(async () => {
  template = await ensurePackaged();
}, 600_000);

/** AWS-published metrics an alarm may watch (the service's own metrics must come from METRIC). */
const AWS_METRICS: Record<string, string[]> = {
  'AWS/States': [
    'ExecutionsFailed',
    'ExecutionsTimedOut',
    'ExecutionsAborted',
    'ExecutionThrottled',
    'ExecutionsStarted',
    'ExecutionsSucceeded',
  ],
  'AWS/SQS': ['ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage', 'NumberOfMessagesSent'],
  'AWS/Lambda': [
    'Errors',
    'Throttles',
    'Duration',
    'Invocations',
    'AsyncEventsDropped',
    'DeadLetterErrors',
    'DestinationDeliveryFailures',
  ],
  'AWS/Events': ['FailedInvocations', 'InvocationsSentToDlq', 'InvocationsFailedToBeSentToDlq'],
};

const ours = new Set<string>(Object.values(METRIC));

interface Watched {
  namespace: string;
  metric: string;
}

function watchedBy(alarm: CfnResource): Watched[] {
  const p = alarm.Properties ?? {};
  if (p.MetricName) return [{ namespace: String(p.Namespace), metric: String(p.MetricName) }];
  const queries = (p.Metrics ?? []) as { MetricStat?: { Metric: { Namespace: string; MetricName: string } } }[];
  return queries.flatMap((q) =>
    q.MetricStat ? [{ namespace: q.MetricStat.Metric.Namespace, metric: q.MetricStat.Metric.MetricName }] : [],
  );
}

function alarms(): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
}

describe('alarms and dashboard', () => {
  it('watch only metrics the code emits (METRIC) or that AWS publishes', () => {
    const wrong = alarms().flatMap(([id, alarm]) => {
      const watched = watchedBy(alarm);
      if (!watched.length) return [`${id}: watches no metric`];
      return watched
        .filter(({ namespace, metric }) =>
          namespace === METRICS_NAMESPACE ? !ours.has(metric) : !AWS_METRICS[namespace]?.includes(metric),
        )
        .map(({ namespace, metric }) => `${id}: ${namespace}/${metric}`);
    });
    expect(wrong).toEqual([]);
  });

  it('cover replication failures, readiness gaps, failed executions, the dead-letter queue, retention errors and failed drills', () => {
    const watched = alarms().flatMap(([, alarm]) => watchedBy(alarm).map((w) => `${w.namespace}/${w.metric}`));
    expect(watched).toEqual(
      expect.arrayContaining([
        `ami-dr/${METRIC.replicationFailed}`,
        `ami-dr/${METRIC.imagesNotReady}`,
        'AWS/States/ExecutionsFailed',
        'AWS/SQS/ApproximateNumberOfMessagesVisible',
        `ami-dr/${METRIC.retentionErrors}`,
        `ami-dr/${METRIC.drillsFailed}`,
      ]),
    );
  });

  it('notify the SNS topic and watch the dimensions Powertools emits', () => {
    for (const [id, alarm] of alarms()) {
      const p = alarm.Properties!;
      expect(template.Resources[(p.AlarmActions as { Ref: string }[])[0]!.Ref]?.Type, id).toBe('AWS::SNS::Topic');
      if (p.Namespace === METRICS_NAMESPACE) expect(p.Dimensions, id).toEqual([{ Name: 'service', Value: 'ami-dr' }]);
    }
  });

  it('put readiness and lag on the dashboard, from metrics the code emits', () => {
    const dashboard = Object.values(template.Resources).find((r) => r.Type === 'AWS::CloudWatch::Dashboard')!;
    const body = JSON.parse((dashboard.Properties!.DashboardBody as { 'Fn::Sub': string })['Fn::Sub']) as {
      widgets: { properties: { metrics: string[][] } }[];
    };
    const shown = body.widgets.flatMap((w) => w.properties.metrics).map((m) => [m[0], m[1]]);
    const unknown = shown.filter(([ns, name]) =>
      ns === METRICS_NAMESPACE ? !ours.has(name!) : !AWS_METRICS[ns!]?.includes(name!),
    );
    expect(unknown).toEqual([]);
    expect(shown.map(([, name]) => name)).toEqual(
      expect.arrayContaining([METRIC.readyRatio, METRIC.imagesNotReady, METRIC.replicationLagSeconds]),
    );
  });
});

describe('policy baked into the functions', () => {
  it('is the example policy, parsed and with its defaults, in every function', () => {
    const expected = parsePolicy(parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')));
    const functions = [...lambdaResources(template).entries()];
    expect(functions.length).toBeGreaterThan(0);
    for (const [key, { properties }] of functions) {
      const variables = (properties.Environment as { Variables: Record<string, string> }).Variables;
      expect(JSON.parse(variables.AMI_DR_POLICY!), key).toEqual(expected);
    }
  });

  it('fails packaging, naming the field, when the policy is bad', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-bad-policy-'));
    try {
      const bad = parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')) as {
        regions: { dr: { kmsKeyId: string }[] };
      };
      bad.regions.dr[0]!.kmsKeyId = 'not a key';
      writeFileSync(join(dir, 'policy.yml'), JSON.stringify(bad));
      // Variables are resolved before anything is built, so this stops early; --package keeps it off the real output.
      const result = await promisify(execFile)(
        'npm',
        ['run', '--silent', 'package', '--', '--package', join(dir, 'out')],
        {
          cwd: ROOT,
          env: { ...process.env, AMI_DR_POLICY_FILE: join(dir, 'policy.yml') },
          timeout: 120_000,
        },
      ).then(
        () => ({ failed: false, output: '' }),
        (error: { stdout: string; stderr: string }) => ({ failed: true, output: `${error.stdout}\n${error.stderr}` }),
      );
      expect(result.failed).toBe(true);
      expect(result.output).toContain('regions.dr.0.kmsKeyId: is not a KMS key id, alias or ARN');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
