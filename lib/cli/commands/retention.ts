import type { RetentionAction } from '../../domain/retention-planner.ts';
import { summarizeReport, type RetentionReport } from '../../domain/retention-report.ts';
import { retentionRegions, runRetention, type RetentionRun } from '../../workflows/retention.ts';
import { alignColumns } from '../../report/format.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';

export const retentionCommand: Command = {
  name: 'retention',
  summary: 'plan or apply retention: deprecate and remove aged images, never ones in use',
  usage: 'ami-dr retention plan|apply [--region region] [--dry-run]',
  description:
    'plan: what retention would do in each region, with a reason for every image (no changes).\n' +
    "apply: does it: deprecates, then deregisters aged images with their snapshots or S3 bundles, paced to EC2's\n" +
    'rate limits. Images that are retained, protected, in use, owned by AWS Backup or among the newest of their\n' +
    'family are kept. Without --region, every region of the policy (sources and DR) is processed in turn.',
  options: {
    region: { type: 'string', valueName: 'region', description: 'one region only' },
    'dry-run': { type: 'boolean', description: 'with apply: plan and report, change nothing' },
    all: { type: 'boolean', description: 'with plan: list kept images too (default: only the changes, and counts)' },
  },
  positionals: ['plan|apply'],
  examples: [
    'ami-dr retention plan',
    'ami-dr retention plan --region us-east-1 --all',
    'ami-dr retention apply --region us-west-2',
    'ami-dr retention apply --dry-run --json',
  ],
  async run(ctx, values, [mode = '']) {
    if (mode !== 'plan' && mode !== 'apply')
      throw new UsageError(`expected 'plan' or 'apply', not '${mode}'`, 'retention');
    const policy = ctx.policy();
    const governed = retentionRegions(policy);
    const requested = values.region as string | undefined;
    // Retention removes images: a region outside the policy (a typo, say) is refused, never processed.
    if (requested !== undefined && !governed.includes(requested)) {
      throw new UsageError(`${requested} is not a region of the policy (${governed.join(', ')})`, 'retention');
    }
    const regions = requested ? [requested] : governed;
    const dryRun = mode === 'plan' || Boolean(values['dry-run']);
    const session = await ctx.session({ region: regions[0], role: 'retention' });
    if (session.local) await session.local.waitForIdle();
    const runs: RetentionRun[] = [];
    for (const region of regions) {
      const progress = ctx.out.progress(`${dryRun ? 'planning' : 'applying'} retention in ${region}`);
      try {
        runs.push(
          await runRetention({
            clients: session.clients,
            policy,
            region,
            now: session.now(),
            dryRun,
            accountId: session.accountId,
            clock: session.now,
            sleep: session.sleep,
            onProgress: (done, total) => progress.update(`${done}/${total} images`),
          }),
        );
      } finally {
        progress.done();
      }
    }
    if (ctx.flags.json) {
      ctx.out.printJson({
        mode,
        dryRun,
        regions: runs.map((r) => ({ ...r.report, ...(r.reportLocation ? { reportLocation: r.reportLocation } : {}) })),
      });
    } else {
      for (const run of runs) printRun(ctx, run, dryRun, Boolean(values.all));
    }
    return runs.some((r) => r.report.errors.length > 0) ? EXIT.failure : EXIT.ok;
  },
};

function printRun(ctx: CommandContext, run: RetentionRun, dryRun: boolean, all: boolean): void {
  const report: RetentionReport = run.report;
  ctx.out.print(ctx.out.paint('bold', `${report.region}${dryRun ? ' (plan, nothing changed)' : ''}`));
  const shown = run.plan.actions.filter((a) => all || a.action !== 'keep');
  if (shown.length) {
    const rows = [
      ['IMAGE', 'NAME', 'ACTION', 'REASON'],
      ...shown.map((a) => [a.imageId, a.name, verb(a, dryRun, report), a.detail]),
    ];
    const aligned = alignColumns(rows);
    aligned.forEach((cols, i) => {
      const action = i === 0 ? undefined : shown[i - 1]?.action;
      const color = action === 'deregister' ? 'red' : action === 'deprecate' ? 'yellow' : undefined;
      ctx.out.print(
        `  ${cols
          .map((c, j) => (j === 2 && color ? ctx.out.paint(color, c) : c))
          .join('  ')
          .trimEnd()}`,
      );
    });
  } else {
    ctx.out.print('  nothing to deprecate or remove');
  }
  ctx.out.print(
    summarizeReport(report)
      .split('\n')
      .map((l) => `  ${l.trimStart()}`)
      .join('\n'),
  );
  if (run.reportLocation) ctx.out.print(`  report: ${run.reportLocation}`);
  ctx.out.print('');
}

function verb(action: RetentionAction, dryRun: boolean, report: RetentionReport): string {
  if (action.action === 'keep') return 'keep';
  if (dryRun) return action.action === 'deprecate' ? 'will deprecate' : 'will remove';
  if (action.action === 'deprecate')
    return report.deprecated.some((d) => d.imageId === action.imageId) ? 'deprecated' : 'pending';
  return report.removed.some((r) => r.imageId === action.imageId)
    ? 'removed'
    : report.errors.some((e) => e.imageId === action.imageId)
      ? 'failed'
      : 'pending';
}
