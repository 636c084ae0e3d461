import { writeFile } from 'node:fs/promises';
import { runReadiness } from '../../workflows/readiness.ts';
import { formatDuration, formatPercent } from '../../report/format.ts';
import { REPORT_FORMATS, renderReport, type ReportFormat } from '../../report/index.ts';
import type { Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';
import { plural } from '../../domain/text.ts';

export const readinessCommand: Command = {
  async run(ctx, values) {
    const format = (values.format as string | undefined) ?? (ctx.flags.json ? 'json' : 'table');
    if (!(REPORT_FORMATS as readonly string[]).includes(format))
      throw new UsageError(`--format must be one of ${REPORT_FORMATS.join(', ')} (got '${format}')`, 'readiness');
    // Scripts rely on --json meaning a JSON document on stdout.
    if (ctx.flags.json && format !== 'json')
      throw new UsageError(
        `--json prints the report as JSON; it cannot be combined with --format ${format}`,
        'readiness',
      );
    const policy = ctx.policy();
    const session = await ctx.session({ role: 'readiness' });
    if (session.local) await session.local.waitForIdle();
    const progress = ctx.out.progress('computing readiness');
    let run: Awaited<ReturnType<typeof runReadiness>>;
    try {
      run = await runReadiness({
        clients: session.clients,
        policy,
        now: session.now(),
        reconcile: Boolean(values.reconcile),
        stateMachineArnFor: session.stateMachineArnFor,
        onProgress: (t) => progress.update(t),
      });
    } finally {
      progress.done();
    }
    const { report } = run;
    const rendered =
      format === 'json'
        ? `${JSON.stringify({ schemaVersion: 1, ...report, plan: run.plan, ...(run.reconciliation ? { reconciliation: run.reconciliation } : {}) }, null, 2)}\n`
        : renderReport(report, format as ReportFormat, { color: ctx.out.color && !values.output });
    const s = report.summary;
    if (values.output) {
      await writeFile(values.output as string, rendered);
      ctx.out.note(
        `wrote ${values.output} (${plural(s.images, 'image')} × ${plural(report.drRegions.length, 'DR region')})`,
      );
      if (!ctx.flags.json)
        ctx.out.print(
          `${formatPercent(s.readyRatio)} ready; ${s.imagesNotReady} of ${plural(s.images, 'image')} not ready everywhere`,
        );
    } else {
      ctx.out.print(rendered);
    }
    if (run.reconciliation && format !== 'json') {
      const r = run.reconciliation;
      for (const x of r.redriven)
        ctx.out.note(
          `re-drive ${x.sourceImageId} → ${x.regions.join(', ')}: ${x.result}${x.retryAt ? ` until ${x.retryAt}` : ''} (${x.executionName})`,
        );
      for (const x of r.repaired) ctx.out.note(`repaired ${x.copyImageId} in ${x.region}: ${x.applied.join(', ')}`);
      for (const x of r.manual) ctx.out.note(`needs a person: ${x.copyImageId} in ${x.region}: ${x.reason}`);
      for (const x of r.errors)
        ctx.out.note(
          `${ctx.out.paint('red', 'failed', 'err')} to ${x.action} ${x.imageId} (${x.region}): ${x.message}`,
        );
    }
    if (run.reconciliation?.errors.length) return EXIT.failure;
    if (values['fail-on-gap'] && s.imagesNotReady > 0) {
      ctx.out.note(
        `gap: ${plural(s.imagesNotReady, 'image')} not ready in every DR region (oldest ${formatDuration(s.oldestUnprotectedAgeSeconds)})`,
      );
      return EXIT.failure;
    }
    return EXIT.ok;
  },
};
