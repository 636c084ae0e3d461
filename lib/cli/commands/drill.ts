import { describeVerification } from '../../domain/drill.ts';
import { plural } from '../../domain/text.ts';
import { runDrills, type DrillResult } from '../../workflows/drill.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';

/** `passed`, `failed (key-access)`, `interrupted`. */
const outcomeText = (r: DrillResult) => (r.failure ? `${r.outcome} (${r.failure})` : r.outcome);

export const drillCommand: Command = {
  async run(ctx) {
    const policy = ctx.policy();
    const session = await ctx.session({ role: 'drill' });
    if (session.local) await session.local.waitForIdle();
    const progress = ctx.out.progress('running restore drills');
    let run: Awaited<ReturnType<typeof runDrills>>;
    try {
      run = await runDrills({
        clients: session.clients,
        policy,
        now: () => session.now(),
        sleep: (ms) => session.sleep(ms),
        signal: ctx.signal,
        onProgress: (t) => progress.update(t),
      });
    } finally {
      progress.done();
    }
    const { report } = run;
    if (ctx.flags.json) {
      ctx.out.printJson(report);
    } else {
      const rows = report.results.map((r) => [
        r.outcome === 'passed' ? ctx.out.paint('green', 'passed') : ctx.out.paint('red', outcomeText(r)),
        r.region,
        r.family,
        r.copyImageId,
        r.instanceType ?? '-',
        `${r.minutes} min`,
        r.outcome === 'passed'
          ? describeVerification({ at: r.endedAt ?? '', outcome: 'passed', passed: true, days: 0 })
          : (r.reason ?? ''),
      ]);
      const unreached = report.unreached.map((u) =>
        [ctx.out.paint('red', 'failed (account-access)'), u.region, `(${u.account})`, u.reason].join('  '),
      );
      ctx.out.print(
        rows.length || unreached.length
          ? [...rows.map((cells) => cells.join('  ')), ...unreached].join('\n')
          : 'no available copies to drill in the DR regions',
      );
      const s = report.summary;
      ctx.out.print(
        `${plural(s.drills, 'drill')}: ${s.passed} passed, ${s.failed} failed${s.interrupted ? `, ${s.interrupted} interrupted` : ''}${s.unreached ? `, ${plural(s.unreached, 'DR region')} not reached` : ''}; ${s.instanceMinutes} instance-minutes`,
      );
      for (const x of report.results.filter((r) => r.recordError))
        ctx.out.note(`the outcome could not be recorded on ${x.copyImageId} (${x.region}): ${x.recordError}`);
      for (const x of report.skipped) ctx.out.note(`skipped ${x.copyImageId} (${x.family}, ${x.region}): ${x.reason}`);
      for (const x of report.swept)
        ctx.out.note(`terminated leftover drill instance ${x.instanceId} in ${x.region} (launched ${x.launchTime})`);
    }
    if (report.summary.interrupted) return EXIT.interrupted;
    return report.summary.failed || report.summary.unreached ? EXIT.failure : EXIT.ok;
  },
};
