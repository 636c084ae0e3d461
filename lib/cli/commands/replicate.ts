import { setTimeout as sleep } from 'node:timers/promises';
import { describeImage, findCopies } from '../../aws/copy.ts';
import { startOrJoinReplication } from '../../workflows/replication.ts';
import { describeExecution } from '../../aws/sfn.ts';
import { ADOPTABLE_STATES, type ImageRecord, type ImageState } from '../../domain/image.ts';
import { screenImage } from '../../domain/replication.ts';
import type { Command, Session } from '../command.ts';
import { CommandError, EXIT, UsageError } from '../errors.ts';
import { ec2Client, sfnClient } from '../../aws/clients.ts';

const IMAGE_ID = /^ami-[0-9a-f]{8,17}$/;

interface RegionProgress {
  region: string;
  state: string;
  copyImageId?: string;
  reason?: string;
}

export const replicateCommand: Command = {
  async run(ctx, values, [imageId = '']) {
    if (!IMAGE_ID.test(imageId))
      throw new UsageError(`'${imageId}' is not an image id (like ami-0123456789abcdef0)`, 'replicate');
    const policy = ctx.policy();
    const requested = values.region as string | undefined;
    const fromEnv =
      ctx.env.AWS_REGION && policy.regions.sources.includes(ctx.env.AWS_REGION) ? ctx.env.AWS_REGION : undefined;
    const region = requested ?? fromEnv ?? policy.regions.sources[0] ?? '';
    if (!policy.regions.sources.includes(region)) {
      throw new UsageError(
        `${region} is not a source region of the policy (sources: ${policy.regions.sources.join(', ')})`,
        'replicate',
      );
    }
    const session = await ctx.session({ region });
    const image = await describeImage(ec2Client(session.clients, region), region, imageId);
    if (!image) throw new CommandError(`image ${imageId} not found in ${region}`);
    const verdict = screenImage(image, { policy, accountId: session.accountId });
    if (!verdict.act) throw new CommandError(`${imageId} is not replicated: ${verdict.detail}`);

    const stateMachineArn = session.stateMachineArnFor(region);
    const started = await startOrJoinReplication(
      { clients: session.clients, policy, stateMachineArn },
      region,
      imageId,
      {
        redrive: true,
      },
    );
    const targets = policy.regions.dr.filter((d) => d.region !== region).map((d) => d.region);
    const what = started.result === 'started' ? 'started' : 'joined the running';
    // A person asked: the CLI re-drives at once (no back-off), so it never answers `backing-off`.
    if (!ctx.flags.json)
      ctx.out.print(
        `${what} replication of ${imageId} (${image.name}) from ${region} to ${targets.join(', ')}: ${started.executionName}`,
      );
    if (!values.wait) {
      if (ctx.flags.json)
        ctx.out.printJson({
          imageId,
          region,
          executionName: started.executionName,
          executionArn: started.executionArn,
          result: started.result,
          targets,
        });
      return EXIT.ok;
    }

    const final = await follow(ctx, session, image, targets, started.executionArn, policy.replication.deadlineHours);
    const ok = final.regions.every((r) => r.state === 'available');
    if (ctx.flags.json) {
      ctx.out.printJson({
        imageId,
        region,
        executionName: started.executionName,
        executionArn: started.executionArn,
        result: started.result,
        status: final.status,
        regions: final.regions,
      });
    } else {
      for (const r of final.regions) {
        const mark = r.state === 'available' ? ctx.out.paint('green', '✓') : ctx.out.paint('red', '✗');
        ctx.out.print(
          `  ${mark} ${r.region}: ${r.state}${r.copyImageId ? ` ${r.copyImageId}` : ''}${r.reason ? ` (${r.reason})` : ''}`,
        );
      }
      ctx.out.print(
        ok
          ? `replicated to ${final.regions.length} DR regions`
          : `replication ${final.status.toLowerCase()}: not every DR region has an available copy`,
      );
    }
    return ok ? EXIT.ok : EXIT.failure;
  },
};

async function follow(
  ctx: Parameters<Command['run']>[0],
  session: Session,
  source: ImageRecord,
  targets: string[],
  executionArn: string,
  deadlineHours: number,
): Promise<{ status: string; regions: RegionProgress[] }> {
  const progress = ctx.out.progress(`replicating ${source.imageId}`);
  const smRegion = executionArn.split(':')[3] ?? source.region;
  // A twin answers at once; AWS is polled gently (copies take minutes to hours).
  const endpoint = ctx.env.AWS_ENDPOINT_URL_EC2 ?? ctx.env.AWS_ENDPOINT_URL ?? '';
  const intervalMs = session.local || /\/\/(127\.0\.0\.1|localhost)[:/]/.test(endpoint) ? 250 : 5000;
  const giveUpAt = Date.now() + deadlineHours * 3600_000 + 600_000;
  try {
    for (;;) {
      // On the twin's virtual clock, time moves when the runtime is left to run.
      if (session.local) await session.local.waitForIdle();
      const execution = await describeExecution(sfnClient(session.clients, smRegion), executionArn);
      const regions = await Promise.all(targets.map((t) => regionProgress(session, source, t)));
      progress.update(regions.map((r) => `${r.region} ${r.state}`).join(' · '));
      if (execution.status !== 'RUNNING') {
        // The execution's output says why a region failed when its copy is already cleaned up.
        const results = outputRegions(execution.output);
        return {
          status: execution.status,
          regions: regions.map((r) => {
            const result = results.get(r.region);
            if (r.state === 'available' || !result) return r;
            return {
              ...r,
              state: result.status === 'available' ? 'available' : 'failed',
              reason: result.reason ?? r.reason,
            };
          }),
        };
      }
      if (Date.now() > giveUpAt) return { status: 'RUNNING', regions };
      await sleep(intervalMs);
    }
  } finally {
    progress.done();
  }
}

async function regionProgress(session: Session, source: ImageRecord, region: string): Promise<RegionProgress> {
  const copies = await findCopies(ec2Client(session.clients, region), region, source.region, source.imageId);
  const rank = (s: ImageState) => {
    const i = ADOPTABLE_STATES.indexOf(s);
    return i < 0 ? ADOPTABLE_STATES.length : i;
  };
  const copy = copies.filter((c) => c.state !== 'deregistered').sort((a, b) => rank(a.state) - rank(b.state))[0];
  if (!copy) return { region, state: 'not started' };
  return {
    region,
    state: copy.state,
    copyImageId: copy.imageId,
    ...(copy.stateReason ? { reason: copy.stateReason } : {}),
  };
}

function outputRegions(output: unknown): Map<string, { status?: string; reason?: string }> {
  const regions = (output as { regions?: unknown } | undefined)?.regions;
  const map = new Map<string, { status?: string; reason?: string }>();
  if (Array.isArray(regions)) {
    for (const r of regions as { region?: string; status?: string; reason?: string }[])
      if (r.region) map.set(r.region, { status: r.status, reason: r.reason });
  }
  return map;
}
