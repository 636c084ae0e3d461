import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parsePolicy } from '../../../lib/domain/policy.ts';
import { METRIC } from '../../../lib/observability.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { seedAccount } from '../../../local/runtime/seed-account.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { captureEmf, lambdaContext } from '../lambda.ts';

// The handler waits with node:timers/promises; here a wait moves the twin's clock instead of real time.
const waits = vi.hoisted(() => ({ clock: undefined as { advance(ms: number): number } | undefined }));
vi.mock('node:timers/promises', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:timers/promises')>()),
  setTimeout: async (ms: number) => void waits.clock?.advance(ms),
}));
// Powertools keeps metrics to itself in dev mode (the test setup's POWERTOOLS_DEV); this test reads the EMF output.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

const ROOT = join(import.meta.dirname, '..', '..', '..');
const EVENT = JSON.parse(readFileSync(join(ROOT, 'events', 'scheduled-drill.json'), 'utf8')) as unknown;
const context = lambdaContext('ami-dr-dev-drill');

/** The scheduled drill function, imported as Lambda would (policy from the environment), on the twin. */
describe('functions/drill', () => {
  let rt: LocalRuntime;

  beforeAll(async () => {
    const document = parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')) as Record<string, unknown>;
    const policy = parsePolicy({ ...document, drill: { enabled: true } });
    const clock = new ManualClock(Date.now());
    waits.clock = clock;
    rt = await startLocalRuntime({ policy, clock, twinOptions: { s3: false } });
    seedAccount(rt.twin.seed, policy, clock.now());
    await rt.waitForIdle();
    process.env.AMI_DR_POLICY = JSON.stringify(policy);
    process.env.AWS_ENDPOINT_URL = rt.twin.endpoint;
  });
  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL;
    delete process.env.AMI_DR_POLICY;
    await rt?.stop();
  });

  it('runs the drills, publishes DrillsFailed for the copies that do not boot (the alarm), and leaves nothing running', async () => {
    rt.twin.faults.failBoots('eu-west-1');
    const emf = captureEmf();
    const { handler } = await import('../../../functions/drill.ts');

    const result = (await handler(EVENT, context)) as { summary: Record<string, number> };
    const [metrics] = emf.stop();

    expect(result.summary).toMatchObject({ drills: 4, passed: 2, failed: 2, interrupted: 0 });
    expect(metrics).toMatchObject({ [METRIC.drillsRun]: 4, [METRIC.drillsPassed]: 2, [METRIC.drillsFailed]: 2 });
    const left = ['us-west-2', 'eu-west-1'].flatMap((region) =>
      [...rt.twin.state.region(region).instances.values()].filter((i) => i.state !== 'terminated'),
    );
    expect(left).toEqual([]);
  });
});
