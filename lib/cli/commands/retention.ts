import { readFile, writeFile } from 'node:fs/promises';
import { policyVersion } from '../../domain/policy.ts';
import type { RetentionAction } from '../../domain/retention-planner.ts';
import { summarizeReport, type RetentionReport } from '../../domain/retention-report.ts';
import {
  parseSavedPlan,
  SavedPlanError,
  SavedPlanRefusedError,
  toSavedPlan,
  type SavedPlan,
} from '../../domain/saved-plan.ts';
import { plural } from '../../domain/text.ts';
import {
  retentionRegions,
  runRetentionEverywhere,
  type RetentionRun,
  type ScheduledRetention,
} from '../../workflows/retention.ts';
import { alignColumns } from '../../report/format.ts';
import { DEFAULT_POLICY_FILE, type Command, type CommandContext, type ParsedValues } from '../command.ts';
import { parseDuration } from '../duration.ts';
import { CommandError, EXIT, UsageError } from '../errors.ts';
import type { ProgressLine } from '../output.ts';

export const retentionCommand: Command = {
  async run(ctx, values, [mode = '']) {
    if (mode !== 'plan' && mode !== 'apply')
      throw new UsageError(`expected 'plan' or 'apply', not '${mode}'`, 'retention');
    const policy = ctx.policy();
    const { regions, output, planFile, budgetMs } = checkOptions(values, mode, retentionRegions(policy));
    const saved = planFile === undefined ? undefined : await readSavedPlan(planFile);
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
    const session = await ctx.session({ region: saved?.regions[0] ?? regions[0], role: 'retention' });
    if (session.local) await session.local.waitForIdle();
    const now = session.now();
    const deadline = budgetMs === undefined ? undefined : now + budgetMs;
    let progress: ProgressLine | undefined;
    let shown = '';
    let result: ScheduledRetention;
    try {
      result = await runRetentionEverywhere({
        clients: session.clients,
        policy,
        ...(saved ? { saved } : { regions }),
        now,
        dryRun,
        accountId: session.accountId,
        clock: session.now,
        sleep: session.sleep,
        signal: ctx.signal,
        ...(deadline !== undefined ? { deadline } : {}),
        onProgress: (region, phase, done, total) => {
          const label = `${phase === 'planning' || dryRun ? 'planning' : 'applying'} retention in ${region}`;
          if (label !== shown) {
            progress?.done();
            progress = ctx.out.progress(label);
            shown = label;
          }
          if (total) progress?.update(`${done}/${total} images`);
        },
      });
    } catch (error) {
      if (error instanceof SavedPlanRefusedError) throw new CommandError(`${planFile}: ${error.message}`, EXIT.usage);
      throw error;
    } finally {
      progress?.done();
    }
    const { runs, failures } = result;
    // Nothing ran at all: the one error (no credentials, no endpoint, ...) is the command's.
    if (runs.length === 0 && failures.length > 0 && failures[0]?.error) throw failures[0].error;
    const written = output !== undefined ? await writePlan(output, result, policy, session.accountId, now) : undefined;
    const interrupted = ctx.signal.aborted;
    printResult(ctx, { mode, dryRun, interrupted, result, all: Boolean(values.all), saved, planFile, output, written });
    if (interrupted) return EXIT.interrupted;
    return failures.length > 0 || runs.some((r) => r.report.errors.length > 0) ? EXIT.failure : EXIT.ok;
  },
};

interface RetentionOptions {
  regions: string[];
  output: string | undefined;
  planFile: string | undefined;
  budgetMs: number | undefined;
}

/** The options, checked against the mode and the policy's regions. */
function checkOptions(values: ParsedValues, mode: 'plan' | 'apply', governed: string[]): RetentionOptions {
  const requested = values.region as string | undefined;
  // Retention removes images: a region outside the policy (a typo, say) is refused, never processed.
  if (requested !== undefined && !governed.includes(requested)) {
    throw new UsageError(`${requested} is not a region of the policy (${governed.join(', ')})`, 'retention');
  }
  const output = values.output as string | undefined;
  const planFile = values.plan as string | undefined;
  if (output !== undefined && mode !== 'plan')
    throw new UsageError('--output goes with plan (apply --plan reads the file)', 'retention');
  if (planFile !== undefined && mode !== 'apply')
    throw new UsageError('--plan goes with apply (plan --output writes the file)', 'retention');
  if (planFile !== undefined && requested !== undefined)
    throw new UsageError('--plan applies the regions the saved plan names; --region does not go with it', 'retention');
  const budget = values['time-budget'] as string | undefined;
  if (budget !== undefined && mode !== 'apply')
    throw new UsageError('--time-budget goes with apply (a plan changes nothing)', 'retention');
  const budgetMs = budget === undefined ? undefined : parseDuration(budget, 'time-budget', 'retention');
  return { regions: requested ? [requested] : governed, output, planFile, budgetMs };
}

interface ResultView {
  mode: 'plan' | 'apply';
  dryRun: boolean;
  interrupted: boolean;
  result: ScheduledRetention;
  all: boolean;
  saved: SavedPlan | undefined;
  planFile: string | undefined;
  output: string | undefined;
  written: { fingerprint: string; line: string } | undefined;
}

function printResult(ctx: CommandContext, view: ResultView): void {
  const { mode, dryRun, interrupted, result, saved, planFile, output, written } = view;
  const { runs, failures } = result;
  const notStarted = result.skipped;
  if (ctx.flags.json) {
    ctx.out.printJson({
      mode,
      dryRun,
      interrupted,
      regionsNotStarted: notStarted,
      ...(written ? { planFile: output, planFingerprint: written.fingerprint } : {}),
      ...(saved ? { savedPlan: { file: planFile, now: saved.now, fingerprint: saved.fingerprint } } : {}),
      failures: failures.map(({ region, code, message }) => ({ region, code, message })),
      regions: runs.map((r) => ({
        ...r.report,
        ...(r.reportLocation ? { reportLocation: r.reportLocation } : {}),
        ...(r.skipped ? { skipped: r.skipped, inventoryChanged: r.inventoryChanged } : {}),
      })),
    });
  } else {
    for (const run of runs) printRun(ctx, run, dryRun, view.all);
    for (const run of runs)
      for (const w of run.report.warnings)
        ctx.out.note(`${ctx.out.paint('yellow', 'warning:', 'err')} ${run.report.region}: ${w}`);
    for (const f of failures)
      ctx.out.note(`${ctx.out.paint('red', 'error:', 'err')} ${f.region}: ${f.code}: ${f.message}`);
    const left = notStarted.length > 0 || runs.some((r) => r.report.counts.pending > 0);
    if (interrupted || left) ctx.out.note(stopLine(runs, notStarted, interrupted));
    if (written) ctx.out.note(written.line);
  }
}

/** A saved plan from its file, or a one-line error (exit 2). */
async function readSavedPlan(path: string): Promise<SavedPlan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CommandError(
      `cannot read the plan file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      EXIT.usage,
    );
  }
  try {
    return parseSavedPlan(text, path);
  } catch (error) {
    if (error instanceof SavedPlanError) throw new CommandError(error.message, EXIT.usage);
    throw error;
  }
}

/** Writes the plan of every region for `apply --plan`; refused when a region could not be planned. */
async function writePlan(
  path: string,
  result: ScheduledRetention,
  policy: Parameters<typeof policyVersion>[0],
  accountId: string,
  now: number,
): Promise<{ fingerprint: string; line: string }> {
  const missing = [...result.failures.map((f) => f.region), ...result.skipped];
  if (missing.length > 0)
    throw new CommandError(`no plan written to ${path}: ${missing.join(', ')} could not be planned`, EXIT.failure);
  const saved = toSavedPlan({
    policy: { name: policy.name, version: policyVersion(policy) },
    accountId,
    now: new Date(now).toISOString(),
    regions: result.runs.map((r) => ({ plan: r.plan, fingerprint: r.fingerprint })),
  });
  await writeFile(path, `${JSON.stringify(saved, null, 2)}\n`);
  const count = (kind: string): number =>
    saved.plans.reduce((n, p) => n + p.actions.filter((a) => a.action === kind).length, 0);
  return {
    fingerprint: saved.fingerprint,
    line:
      `plan saved to ${path}: ${plural(count('deprecate'), 'deprecation')}, ${plural(count('deregister'), 'removal')} ` +
      `in ${plural(saved.plans.length, 'region')}; apply exactly this with: ami-dr retention apply --plan ${path}`,
  };
}

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
  if (run.skipped?.length) {
    ctx.out.print(`  skipped from the saved plan (${run.skipped.length}):`);
    const rows = alignColumns(
      run.skipped.map((k) => [
        k.imageId,
        k.name,
        k.action === 'deregister' ? 'remove' : 'deprecate',
        `${k.detail} (${k.reason})`,
      ]),
    );
    for (const cols of rows) ctx.out.print(`    ${cols.join('  ').trimEnd()}`);
  }
  if (run.inventoryChanged)
    ctx.out.print('  the images changed since the plan was made: every action was checked again');
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
