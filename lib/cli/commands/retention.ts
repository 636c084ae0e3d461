import type { RetentionAction } from '../../domain/retention-planner.ts';
import { summarizeReport, type RetentionReport } from '../../domain/retention-report.ts';
import { retentionRegions, runRetention, shareOfDeadline, type RetentionRun } from '../../workflows/retention.ts';
import { alignColumns } from '../../report/format.ts';
import { DEFAULT_POLICY_FILE, type Command, type CommandContext } from '../command.ts';
import { parseDuration } from '../duration.ts';
import { EXIT, UsageError } from '../errors.ts';

export const retentionCommand: Command = {
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
    const budget = values['time-budget'] as string | undefined;
    if (budget !== undefined && mode !== 'apply')
      throw new UsageError('--time-budget goes with apply (a plan changes nothing)', 'retention');
    const budgetMs = budget === undefined ? undefined : parseDuration(budget, 'time-budget', 'retention');
    // The policy binds every path: a flag may make a run safer (--dry-run), never less safe.
    const file = ctx.flags.policy ?? DEFAULT_POLICY_FILE;
    const forcedBy =
      mode !== 'apply' || values['dry-run']
        ? undefined
        : !policy.retention.enabled
          ? `retention.enabled is false in ${file}: nothing is deprecated or removed`
          : policy.retention.dryRun
            ? `retention.dryRun is true in ${file}: planning only, nothing is changed`
            : undefined;
    if (forcedBy) ctx.out.note(`${ctx.out.paint('yellow', 'note:', 'err')} ${forcedBy}`);
    const dryRun = mode === 'plan' || Boolean(values['dry-run']) || forcedBy !== undefined;
    const session = await ctx.session({ region: regions[0], role: 'retention' });
    if (session.local) await session.local.waitForIdle();
    const deadline = budgetMs === undefined ? undefined : session.now() + budgetMs;
    const runs: RetentionRun[] = [];
    const notStarted: string[] = [];
    for (const [i, region] of regions.entries()) {
      const now = session.now();
      const share = shareOfDeadline(deadline, now, regions.length - i);
      if (ctx.signal.aborted || (share !== undefined && share <= now)) {
        notStarted.push(region);
        continue;
      }
      const progress = ctx.out.progress(`${dryRun ? 'planning' : 'applying'} retention in ${region}`);
      try {
        runs.push(
          await runRetention({
            clients: session.clients,
            policy,
            region,
            now,
            dryRun,
            accountId: session.accountId,
            clock: session.now,
            sleep: session.sleep,
            signal: ctx.signal,
            ...(share !== undefined ? { deadline: share } : {}),
            onProgress: (done, total) => progress.update(`${done}/${total} images`),
          }),
        );
      } finally {
        progress.done();
      }
    }
    const interrupted = ctx.signal.aborted;
    if (ctx.flags.json) {
      ctx.out.printJson({
        mode,
        dryRun,
        interrupted,
        regionsNotStarted: notStarted,
        regions: runs.map((r) => ({ ...r.report, ...(r.reportLocation ? { reportLocation: r.reportLocation } : {}) })),
      });
    } else {
      for (const run of runs) printRun(ctx, run, dryRun, Boolean(values.all));
      for (const run of runs)
        for (const w of run.report.warnings)
          ctx.out.note(`${ctx.out.paint('yellow', 'warning:', 'err')} ${run.report.region}: ${w}`);
      const left = notStarted.length > 0 || runs.some((r) => r.report.counts.pending > 0);
      if (interrupted || left) ctx.out.note(stopLine(runs, notStarted, interrupted));
    }
    if (interrupted) return EXIT.interrupted;
    return runs.some((r) => r.report.errors.length > 0) ? EXIT.failure : EXIT.ok;
  },
};

/** Why the run stopped early, what it did and what it left, in one line (stderr). */
function stopLine(runs: RetentionRun[], notStarted: string[], interrupted: boolean): string {
  const sum = (f: (r: RetentionReport) => number): number => runs.reduce((n, r) => n + f(r.report), 0);
  return (
    `${interrupted ? 'interrupted' : 'time budget spent'}: ${sum((r) => r.counts.deprecated)} deprecated, ` +
    `${sum((r) => r.counts.removed)} removed, ${sum((r) => r.counts.pending)} left for the next run` +
    (notStarted.length ? `; not started: ${notStarted.join(', ')}` : '')
  );
}

function printRun(ctx: CommandContext, run: RetentionRun, dryRun: boolean, all: boolean): void {
  const report: RetentionReport = run.report;
  ctx.out.print(ctx.out.paint('bold', `${report.region}${dryRun ? ' (plan, nothing changed)' : ''}`));
  const shown = run.plan.actions.filter((a) => all || a.action !== 'keep');
  if (shown.length) {
    const rows = [
      ['IMAGE', 'NAME', 'ACTION', 'REASON'],
      ...shown.map((a) => [a.imageId, a.name, verb(a, dryRun, report), `${a.detail} (rule ${a.rule})`]),
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
  const done =
    action.action === 'deprecate'
      ? report.deprecated.some((d) => d.imageId === action.imageId)
      : report.removed.some((r) => r.imageId === action.imageId);
  if (done) return action.action === 'deprecate' ? 'deprecated' : 'removed';
  return report.errors.some((e) => e.imageId === action.imageId) ? 'failed' : 'pending';
}
