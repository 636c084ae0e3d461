import { createClients, ec2Client } from '../../aws/clients.ts';
import { createImage } from '../../aws/create-image.ts';
import { addLaunchPermissions, setDeprecation } from '../../aws/permissions.ts';
import { runReadiness } from '../../workflows/readiness.ts';
import { TAG } from '../../domain/tags.ts';
import { formatMonthly } from '../../domain/text.ts';
import { runRetention } from '../../workflows/retention.ts';
import { formatDuration } from '../../report/format.ts';
import { renderTable } from '../../report/table.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../errors.ts';
import { PARTNER_ACCOUNT, seedAccount } from '../../../local/runtime/seed-account.ts';
import type { LocalRuntime } from '../../../local/runtime/runtime.ts';
import type { Policy } from '../../domain/policy.ts';

const DAY = 86_400_000;

interface TwinEventLike {
  'detail-type': string;
  region: string;
  time: string;
  detail: Record<string, unknown>;
}

export const demoCommand: Command = {
  async run(ctx) {
    const started = Date.now();
    const demo = await startDemo(ctx);
    const { twin, t0 } = demo;
    const builder = showAccount(demo);
    const executions = await buildAndReplicate(demo, builder);

    demo.heading(3, 'DR readiness');
    const before = await readiness(demo, false);
    demo.say(indent(renderTable(before.report, { color: ctx.out.color })));

    const { gap, fix, after } = await loseAnEventAndReconcile(demo);
    const retention = await planAndApplyRetention(demo);

    const converged = after.report.summary.imagesNotReady === 0;
    const retentionErrors = retention.reduce((n, r) => n + r.errors.length, 0);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    demo.heading(6, 'Done');
    demo.say(
      `  ${converged ? ctx.out.paint('green', 'every image is ready in every DR region') : ctx.out.paint('red', `${after.report.summary.imagesNotReady} images not ready`)}; ` +
        `retention ${retentionErrors ? ctx.out.paint('red', `had ${retentionErrors} errors`) : 'clean'}.`,
    );
    demo.say(`  ${seconds}s of real time, ${formatDuration((twin.clock.now() - t0) / 1000)} of twin time.`);
    if (ctx.flags.json) {
      ctx.out.printJson({
        converged,
        executions: executions.map((e) => ({ name: e.name, status: e.status, output: e.output })),
        readiness: { before: before.report.summary, gap: gap.report.summary, after: after.report.summary },
        reconciliation: fix.reconciliation,
        retention,
      });
    }
    return converged && retentionErrors === 0 ? EXIT.ok : EXIT.failure;
  },
};

/** What every step of the demo shares: the runtime on the twin, the policy and the output. */
interface Demo {
  ctx: CommandContext;
  policy: Policy;
  runtime: LocalRuntime;
  twin: LocalRuntime['twin'];
  t0: number;
  source: string;
  drRegions: string[];
  /** Image names by id, for event lines. */
  names: Map<string, string>;
  say: (text?: string) => void;
  heading: (n: number, text: string) => void;
  /** `[+time]`: twin time since the start. */
  at: (ms: number) => string;
}

async function startDemo(ctx: CommandContext): Promise<Demo> {
  const policy = ctx.policy();
  const { startLocalRuntime } = await import('../../../local/runtime/runtime.ts');
  const runtime = await startLocalRuntime({ policy, twinOptions: { s3: true, copyDurationMs: 14 * 60_000 } });
  ctx.onCleanup(() => runtime.stop());
  const { twin } = runtime;
  const t0 = twin.clock.now();
  const say = (text = '') => {
    if (!ctx.flags.json) ctx.out.print(text);
  };
  const source = policy.regions.sources[0] ?? 'us-east-1';
  say(
    `${ctx.out.paint('bold', 'ami-dr demo')}: the lifecycle on a local twin of AWS at ${twin.endpoint} (account ${twin.accountId}).`,
  );
  say('Time is virtual: a 14-minute copy takes a moment. [+time] is twin time since the start.');
  return {
    ctx,
    policy,
    runtime,
    twin,
    t0,
    source,
    drRegions: policy.regions.dr.filter((d) => d.region !== source).map((d) => d.region),
    names: new Map(),
    say,
    heading: (n, text) => say(`\n${ctx.out.paint('bold', `${n}. ${text}`)}`),
    at: (ms) => ctx.out.paint('gray', `[+${formatDuration((ms - t0) / 1000).padEnd(6)}]`),
  };
}

/** Step 1: seeds the account; returns the instance new images are built from. */
function showAccount(demo: Demo): string {
  const { twin, policy, source, say } = demo;
  demo.heading(1, 'An account');
  const account = seedAccount(twin.seed, policy, demo.t0, (id) => twin.addAccount(id).seed);
  const builder = twin.seed.instance(source, {
    imageId: account.sources[0]?.imageId ?? '',
    tags: { Name: 'image-builder' },
  });
  say(
    `  KMS keys ${Object.entries(account.keys)
      .map(([r]) => `${policy.regions.dr.find((d) => d.region === r)?.kmsKeyId} in ${r}`)
      .join(', ')}`,
  );
  say(
    `  ${account.sources.length} images in ${policy.regions.sources.join(', ')} (families web and batch, up to 200 days old), with their copies in ${demo.drRegions.join(', ')}`,
  );
  say(`  ${account.instances.length + 1} instances and a launch template still using some of them`);
  return builder;
}

/** Step 2: builds images as a user would and shows the replication their events start, as it happens. */
async function buildAndReplicate(demo: Demo, builder: string): Promise<ReturnType<LocalRuntime['executions']>> {
  const { ctx, runtime, twin, source, names, say } = demo;
  demo.heading(2, `New images are built in ${source}; ami-dr replicates them on the event`);
  const user = createClients({
    endpoint: twin.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const unsubscribe = twin.events.subscribe((raw) => {
    const line = describeEvent(raw as TwinEventLike, names);
    if (line) say(`  ${demo.at(Date.parse((raw as TwinEventLike).time))} ${line}`);
  });
  ctx.onCleanup(unsubscribe);
  const builds = [
    { name: 'web-1.5.0', family: 'web', partner: true, deprecateInDays: 365 },
    { name: 'batch-2026.03', family: 'batch', partner: false, deprecateInDays: 0 },
  ];
  const ec2 = ec2Client(user, source);
  for (const b of builds) {
    const imageId = await createImage(ec2, {
      instanceId: builder,
      name: b.name,
      description: `${b.family} image`,
      tags: { Name: b.name, Family: b.family, Team: 'platform', CostCenter: '4711' },
    });
    names.set(imageId, b.name);
    if (b.partner) await addLaunchPermissions(ec2, imageId, [{ userId: PARTNER_ACCOUNT }]);
    if (b.deprecateInDays)
      await setDeprecation(ec2, imageId, new Date(demo.t0 + b.deprecateInDays * DAY).toISOString());
  }
  await runtime.waitForIdle();
  unsubscribe();
  const executions = runtime.executions();
  for (const e of executions) {
    const out = e.output as
      | {
          outcome?: string;
          regions?: { region: string; status: string; imageId?: string; lagSeconds?: number; reason?: string }[];
        }
      | undefined;
    const regions = (out?.regions ?? []).map(
      (r) =>
        `${r.region} ${r.status}${r.lagSeconds !== undefined ? ` (lag ${formatDuration(r.lagSeconds)})` : ''}${r.reason ? ` (${r.reason})` : ''}`,
    );
    say(`  execution ${e.name}: ${e.status.toLowerCase()}${regions.length ? ` — ${regions.join(', ')}` : ''}`);
  }
  return executions;
}

function readiness(demo: Demo, reconcile: boolean): ReturnType<typeof runReadiness> {
  const { runtime, policy, twin } = demo;
  return runReadiness({
    clients: runtime.clientsFor('readiness'),
    policy,
    now: twin.clock.now(),
    reconcile,
    ...(reconcile ? { stateMachineArnFor: (r: string) => runtime.stateMachineArn(r) } : {}),
  });
}

/** Step 4: an image whose event never arrives shows as missing; the scheduled readiness run re-drives it. */
async function loseAnEventAndReconcile(demo: Demo) {
  const { ctx, runtime, twin, source, names, say } = demo;
  demo.heading(4, 'An event is lost; reconciliation repairs it');
  const lostName = 'web-1.5.1';
  const lost = twin.seed.image(source, {
    name: lostName,
    tags: { Name: lostName, Family: 'web', Team: 'platform' },
    creationDate: twin.clock.now(),
    sizeGiB: 8,
  });
  names.set(lost, lostName);
  say(`  ${lostName} (${lost}) appears in ${source}, but its CreateImage event never reaches ami-dr.`);
  say('  Also from the seeded account: a copy event lost earlier, and a copy whose tags someone edited by hand.');
  const gap = await readiness(demo, false);
  for (const row of gap.report.rows) {
    for (const c of row.cells)
      if (c.status !== 'ready')
        say(
          `  ${ctx.out.paint(c.status === 'drifted' ? 'yellow' : 'red', c.status.padEnd(8))} ${row.name} → ${c.region}: ${c.reason ?? ''}`,
        );
  }
  say(`  Scheduled readiness run (the backstop):`);
  const fix = await readiness(demo, true);
  for (const r of fix.reconciliation?.redriven ?? [])
    say(
      `    re-drive ${names.get(r.sourceImageId) ?? r.sourceImageId} → ${r.regions.join(', ')}: ${r.result} ${r.executionName}`,
    );
  for (const r of fix.reconciliation?.repaired ?? [])
    say(`    repair ${r.copyImageId} in ${r.region}: ${r.applied.join(', ')}`);
  for (const e of fix.reconciliation?.errors ?? [])
    say(`    ${ctx.out.paint('red', 'failed')} ${e.action} ${e.imageId}: ${e.message}`);
  await runtime.waitForIdle();
  const after = await readiness(demo, false);
  say(indent(renderTable(after.report, { color: ctx.out.color })));
  return { gap, fix, after };
}

/** Step 5: in every region, the retention plan (a dry-run), then the same run applied; returns the reports. */
async function planAndApplyRetention(demo: Demo) {
  const { ctx, runtime, twin, policy, say } = demo;
  demo.heading(5, 'Retention: plan, then apply');
  const retention = [];
  const regions = [...new Set([...policy.regions.sources, ...demo.drRegions])];
  const later = twin.clock.now();
  const common = {
    clients: runtime.clientsFor('retention'),
    policy,
    now: later,
    accountId: twin.accountId,
    clock: () => twin.clock.now(),
  };
  for (const region of regions) {
    const vault = policy.regions.dr.find((d) => d.region === region && d.account)?.account;
    if (vault) {
      // Out of ami-dr's reach by design: the DR account's own retention role removes its aged copies.
      say(
        `  ${region}: the copies are DR account ${vault}'s; its own retention role removes them (deploy/dr-account.yml)`,
      );
      continue;
    }
    const plan = await runRetention({ ...common, region, dryRun: true });
    const changes = plan.plan.actions.filter((a) => a.action !== 'keep');
    say(`  ${region} plan: ${changes.length ? '' : 'nothing to do'}`);
    for (const a of changes)
      say(
        `    ${a.action === 'deregister' ? ctx.out.paint('red', 'remove   ') : ctx.out.paint('yellow', 'deprecate')} ${a.name.padEnd(14)} ${a.detail}`,
      );
    const kept = Object.entries(plan.report.keptByReason).map(([reason, n]) => `${n} ${reason}`);
    if (kept.length) say(`    keep      ${kept.join(', ')}`);
    const applied = await runRetention({
      ...common,
      region,
      dryRun: false,
      sleep: async (ms) => {
        await runtime.twin.settle();
        advance(twin.clock, ms);
      },
    });
    const r = applied.report;
    say(
      `  ${region} applied: ${r.counts.deprecated} deprecated, ${r.counts.removed} removed (${r.counts.snapshotsDeleted} snapshots deleted, ${r.counts.snapshotsKept} kept), ${r.gibFreed} GiB freed, ${formatMonthly(r.estimatedMonthlySaving)}${r.errors.length ? `, ${r.errors.length} errors` : ''}`,
    );
    retention.push(r);
  }
  return retention;
}

function advance(clock: { now(): number }, ms: number): void {
  const manual = clock as { advance?: (ms: number) => number };
  if (typeof manual.advance === 'function') manual.advance(ms);
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** One line per event a person would care about: image calls and state changes, in the region they happen. */
function describeEvent(event: TwinEventLike, names: Map<string, string>): string | undefined {
  const d = event.detail;
  if (event['detail-type'] === 'EC2 AMI State Change') {
    const id = String(d.ImageId ?? '');
    const state = String(d.State ?? '');
    return `${event.region.padEnd(10)} ${id} ${names.get(id) ?? ''} is ${state}${d.ErrorMessage ? `: ${String(d.ErrorMessage)}` : ''}`.replace(
      / {2,}/g,
      ' ',
    );
  }
  const name = String(d.eventName ?? '');
  if (!['CreateImage', 'CopyImage', 'RegisterImage'].includes(name)) return undefined;
  const id = String((d.responseElements as { imageId?: string } | undefined)?.imageId ?? '');
  const params = (d.requestParameters ?? {}) as { sourceImageId?: string; name?: string };
  if (name === 'CopyImage') {
    const src = params.sourceImageId ?? '';
    names.set(id, names.get(src) ?? params.name ?? '');
    return `${event.region.padEnd(10)} CopyImage ${names.get(src) ?? src} → ${id} (encrypted, tagged ${TAG.role}=replica)`;
  }
  return `${event.region.padEnd(10)} ${name} ${params.name ?? names.get(id) ?? ''} → ${id}`;
}
