import { afterEach, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../lib/domain/policy.ts';
import { DR, harness, refusing, SOURCE, type Harness } from '../replication/helpers.ts';

/**
 * Scheduled readiness on its state machine: one unit per source region, each re-driving what is missing there,
 * one report and one set of metrics for the run; a unit that fails is reported and the others complete.
 */

const SECOND_SOURCE = 'us-east-2';
const policy = parsePolicy({
  regions: { sources: [SOURCE, SECOND_SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
});

interface ReadinessOutput {
  report: {
    summary: { images: number; cells: number; imagesNotReady: number };
    units: { region: string; redriven: number }[];
    failures: { unit: { region: string }; error: string }[];
  };
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

async function run(hh: Harness) {
  const started = await hh.rt.startScheduled('readiness');
  // Only the readiness run itself: the replications it re-drives run on.
  await hh.rt.stepFunctions.execution(started.executionArn)!.done;
  const execution = hh.rt.stepFunctions.execution(started.executionArn)!;
  return { execution, output: JSON.parse(execution.output ?? 'null') as ReadinessOutput };
}

describe('scheduled readiness on Step Functions', () => {
  it('merges the units of every source region into one report and one set of metrics', async () => {
    h = await harness({ policy });
    h.rt.twin.seed.image(SOURCE, { name: 'a-1.0' });
    h.rt.twin.seed.image(SECOND_SOURCE, { name: 'b-1.0' });

    const { execution, output } = await run(h);

    expect(execution.name).toMatch(/^readiness-2026-01-01T00-00$/);
    expect(execution.status).toBe('SUCCEEDED');
    expect(output.report.units.map((u) => [u.region, u.redriven])).toEqual([
      [SOURCE, 1],
      [SECOND_SOURCE, 1],
    ]);
    expect(output.report.summary).toMatchObject({ images: 2, cells: 4, imagesNotReady: 2 });
    const metrics = Object.fromEntries(h.rt.metrics.map((m) => [m.name, m.value]));
    expect(metrics).toMatchObject({ ReadyRatio: 0, ImagesNotReady: 2, ReplicationsRedriven: 2 });
  });

  it('reports a unit whose invocation fails, and the other unit completes', async () => {
    h = await harness({
      policy,
      wrapTask: refusing(
        'readiness.RunUnit',
        (input) => (input as { unit: { region: string } }).unit.region === SECOND_SOURCE,
      ),
    });
    h.rt.twin.seed.image(SOURCE, { name: 'a-1.0' });
    const { execution, output } = await run(h);
    expect(execution.status).toBe('SUCCEEDED');
    expect(output.report.failures).toEqual([
      expect.objectContaining({
        unit: expect.objectContaining({ region: SECOND_SOURCE }),
        error: 'UnauthorizedOperation',
      }),
    ]);
    expect(output.report.units.map((u) => u.region)).toEqual([SOURCE]);
  });
});
