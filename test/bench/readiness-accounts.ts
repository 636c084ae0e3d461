import { parsePolicy } from '../../lib/domain/policy.ts';
import { copyTags } from '../../lib/domain/replication.ts';
import type { ReadinessRunReport } from '../../lib/workflows/scheduled-readiness.ts';
import { startLocalRuntime } from '../../local/runtime/runtime.ts';
import { startOrganizationTwins } from '../../local/twin/accounts.ts';

const SOURCE = 'us-east-1';
const DR = ['us-west-2', 'eu-west-1', 'ap-southeast-2'];
const HOME = '111122223333';
const NOW = Date.UTC(2026, 5, 1);

/**
 * Readiness over an organization: 20 member accounts, each with 500 source images copied into 3 DR regions, run by
 * the scheduled readiness state machine as the home stack runs it (the plan step lists the accounts, one unit per
 * account, up to 10 side by side, each reading its member through the member role; one report). On the twin: one
 * endpoint, the accounts' twins behind it, real time. Figures: the API calls the run makes and how long it takes.
 */
export async function organizationReadiness(ACCOUNTS = 20, IMAGES = 500): Promise<Record<string, string | number>> {
  const members = Array.from({ length: ACCOUNTS }, (_, i) => String(200000000000 + i));
  // S3 in the home account: the scheduled run keeps its unit list and results in the runs bucket.
  const org = await startOrganizationTwins({ home: HOME, members: { workloads: members }, s3: true });
  try {
    const policy = parsePolicy({
      organization: { ous: [org.ous.get('workloads')] },
      regions: { sources: [SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
    });
    for (const account of members) {
      org.organization.deployMemberRole(account, 'ami-dr-member', { trustedAccount: HOME });
      const twin = org.members.get(account)!;
      const keys = Object.fromEntries(DR.map((region) => [region, twin.seed.key(region, { alias: 'ami-dr' }).arn]));
      for (let i = 0; i < IMAGES; i++) {
        const creationDate = new Date(NOW - (i % 100) * 86_400_000).toISOString();
        const sourceId = twin.seed.image(SOURCE, { name: `app-${i}`, creationDate, tags: { Team: 'core' } });
        const source = { imageId: sourceId, region: SOURCE, creationDate, tags: { Team: 'core' } };
        const replicatedAt = new Date(Date.parse(creationDate) + 900_000).toISOString();
        for (const region of DR)
          twin.seed.image(region, {
            name: `app-${i}`,
            creationDate: replicatedAt,
            tags: copyTags(source, policy, replicatedAt).tags,
            kmsKeyId: keys[region],
          });
      }
    }
    // The home account's own DR keys (it has no images: the run reads it all the same).
    for (const region of DR) org.home.seed.key(region, { alias: 'ami-dr' });
    const rt = await startLocalRuntime({ policy, twin: org.home, memberTwins: org.members });
    try {
      const before = org.home.requests();
      const started = performance.now();
      const run = await rt.startScheduled('readiness');
      await rt.stepFunctions.execution(run.executionArn)!.done;
      const seconds = (performance.now() - started) / 1000;
      const calls = org.home.requests() - before;
      const output = rt.stepFunctions.execution(run.executionArn)!.output;
      const { summary, accounts } = (JSON.parse(output ?? 'null') as { report: ReadinessRunReport }).report;
      const ok = accounts.filter((a) => a.status === 'ok').length;
      return {
        [`readiness ${ACCOUNTS} accounts cells`]: `${summary.cells} (${summary.counts.ready} ready); accounts ok: ${ok} of ${accounts.length} (home + ${ACCOUNTS} members)`,
        [`readiness ${ACCOUNTS} accounts api calls`]: calls,
        [`readiness ${ACCOUNTS} accounts twin time s`]: seconds.toFixed(1),
      };
    } finally {
      await rt.stop();
    }
  } finally {
    await org.stop();
  }
}
