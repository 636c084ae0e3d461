import { ManualClock } from '../../local/twin/clock.ts';
import type { Policy } from '../domain/policy.ts';
import type { CommandContext, Session } from './command.ts';
import { seedAccount, type SeededAccount } from '../../local/runtime/seed-account.ts';

export interface LocalSessionDetails {
  account: SeededAccount;
}

/**
 * --local: the whole of ami-dr (twin, event rules, replication state machine) started in this process on a
 * virtual clock, seeded with a realistic account, stopped when the command ends.
 */
export async function startLocalSession(
  ctx: CommandContext,
  policy: Readonly<Policy>,
  region: string,
  role?: 'retention' | 'readiness' | 'drill',
): Promise<Session> {
  const progress = ctx.out.progress('starting the local twin');
  try {
    const { startLocalRuntime } = await import('../../local/runtime/runtime.ts');
    const runtime = await startLocalRuntime({ policy, twinOptions: { s3: true } });
    ctx.onCleanup(() => runtime.stop());
    const now = runtime.twin.clock.now();
    const account = seedAccount(runtime.twin.seed, policy, now, (id) => runtime.twin.addAccount(id).seed);
    if (!ctx.flags.json)
      ctx.out.note(
        `local twin at ${runtime.twin.endpoint}: account ${runtime.twin.accountId}, ${account.sources.length} source images seeded`,
      );
    return {
      clients: role ? runtime.clientsFor(role) : runtime.clients,
      accountId: runtime.twin.accountId,
      region,
      stateMachineArnFor: (r) => runtime.stateMachineArn(r),
      now: () => runtime.twin.clock.now(),
      sleep: async (ms) => {
        const clock = runtime.twin.clock;
        if (clock instanceof ManualClock) clock.advance(ms);
        else await new Promise((resolve) => setTimeout(resolve, ms));
      },
      local: { waitForIdle: () => runtime.waitForIdle(), endpoint: runtime.twin.endpoint },
    };
  } finally {
    progress.done();
  }
}
