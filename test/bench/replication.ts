import { CreateImageCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ManualClock } from '../../local/twin/clock.ts';
import { startLocalRuntime } from '../../local/runtime/runtime.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
import type { Summary } from '../../lib/domain/replication-steps.ts';
import { ec2Client } from '../../lib/aws/clients.ts';

/**
 * Replication on the twin, in twin time: state transitions per DR region for copies of 5 min, 1 h and 12 h
 * (target for 12 h: at most 40), EC2 calls ami-dr makes per image per region, and how long after the event the
 * copy is seen `available` beyond the copy's own duration (waiting for the source, then polling granularity).
 */

const SOURCE = 'us-east-1';
const DR = ['us-west-2', 'eu-west-1'];
const CREATE_MS = 5_000;

interface Run {
  transitionsPerRegion: number;
  transitionsTotal: number;
  ec2CallsPerImagePerRegion: number;
  sourceRegionCalls: number;
  drRegionCalls: number;
  overheadSeconds: number;
  checks: number;
  wallMs: number;
}

async function runOnce(copyMs: number, images = 1): Promise<Run> {
  const started = performance.now();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const policy = parsePolicy({
    regions: { sources: [SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
  });
  const rt = await startLocalRuntime({
    policy,
    clock,
    twinOptions: { copyDurationMs: copyMs, createDurationMs: CREATE_MS },
  });
  try {
    for (const region of DR) rt.twin.seed.key(region, { alias: 'ami-dr' });
    const calls: Record<string, number> = {};
    for (const region of [SOURCE, ...DR]) {
      ec2Client(rt.clients, region).middlewareStack.add(
        (next) => async (args) => {
          calls[region] = (calls[region] ?? 0) + 1;
          return next(args);
        },
        { step: 'initialize', name: 'benchCount' },
      );
    }
    const builder = new EC2Client({
      region: SOURCE,
      endpoint: rt.twin.endpoint,
      credentials: { accessKeyId: 'BENCH', secretAccessKey: 'x' },
    });
    const eventAt = clock.now();
    for (let i = 0; i < images; i++) {
      const base = rt.twin.seed.image(SOURCE, { name: `base-${i}` });
      const instanceId = rt.twin.seed.instance(SOURCE, { imageId: base });
      await builder.send(new CreateImageCommand({ InstanceId: instanceId, Name: `bench-${i}` }));
    }
    await rt.waitForIdle();
    const executions = rt.executions();
    const summaries = executions.map((e) => JSON.parse(e.output ?? '{}') as Summary);
    if (summaries.some((s) => s.outcome !== 'replicated'))
      throw new Error(`replication did not succeed: ${JSON.stringify(summaries)}`);
    const perRegion = executions.flatMap((e) =>
      DR.map((_, i) => e.transitions.filter((t) => t.iteration === i).length),
    );
    const regions = summaries.flatMap((s) => s.regions);
    // Twin time from the CreateImage call to the copy being seen available, minus the copy's own duration.
    const overheads = regions.map((r) => (Date.parse(r.availableAt ?? '') - eventAt) / 1000 - copyMs / 1000);
    const drCalls = DR.reduce((n, r) => n + (calls[r] ?? 0), 0);
    builder.destroy();
    return {
      transitionsPerRegion: Math.max(...perRegion),
      transitionsTotal: Math.max(...executions.map((e) => e.transitions.length)),
      ec2CallsPerImagePerRegion: (drCalls + (calls[SOURCE] ?? 0)) / (images * DR.length),
      sourceRegionCalls: (calls[SOURCE] ?? 0) / images,
      drRegionCalls: drCalls / (images * DR.length),
      overheadSeconds: Math.max(...overheads),
      checks: Math.max(...regions.map((r) => r.checks ?? 0)),
      wallMs: performance.now() - started,
    };
  } finally {
    await rt.stop();
  }
}

export async function bench(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  for (const [label, ms] of [
    ['5 min', 5 * 60_000],
    ['1 h', 3600_000],
    ['12 h', 12 * 3600_000],
  ] as const) {
    const r = await runOnce(ms);
    figures[`transitions per region, ${label} copy`] =
      `${r.transitionsPerRegion} (${r.checks} checks; execution total ${r.transitionsTotal})${label === '12 h' ? ` target <= 40: ${r.transitionsPerRegion <= 40 ? 'met' : 'MISSED'}` : ''}`;
    figures[`EC2 calls per image per region, ${label} copy`] =
      `${r.ec2CallsPerImagePerRegion.toFixed(1)} (source region ${r.sourceRegionCalls.toFixed(0)} per image, DR region ${r.drRegionCalls.toFixed(1)} each)`;
    figures[`event to available beyond the copy, ${label} copy`] =
      `${r.overheadSeconds.toFixed(0)} s twin time (${(r.wallMs / 1000).toFixed(2)} s wall)`;
  }
  const batch = await runOnce(60 * 60_000, 10);
  figures['10 images x 2 regions, 1 h copies: EC2 calls per image per region'] =
    batch.ec2CallsPerImagePerRegion.toFixed(1);
  figures['10 images x 2 regions, 1 h copies: wall time'] = `${(batch.wallMs / 1000).toFixed(2)} s`;
  return figures;
}
