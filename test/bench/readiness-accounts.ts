import { parsePolicy } from '../../lib/domain/policy.ts';
import { copyTags } from '../../lib/domain/replication.ts';
import { createClients } from '../../lib/aws/clients.ts';
import { resolveReach, runReadinessForAccounts } from '../../lib/workflows/organization.ts';
import { startOrganizationTwins } from '../../local/twin/accounts.ts';

const SOURCE = 'us-east-1';
const DR = ['us-west-2', 'eu-west-1', 'ap-southeast-2'];
const HOME = '111122223333';
const NOW = Date.UTC(2026, 5, 1);

/**
 * Readiness over an organization: 20 member accounts, each with 500 source images copied into 3 DR regions, read
 * through each member's role on the twin (one endpoint, the accounts' twins behind it, real time). Figures: the API
 * calls the run makes and how long it takes.
 */
export async function organizationReadiness(ACCOUNTS = 20, IMAGES = 500): Promise<Record<string, string | number>> {
  const members = Array.from({ length: ACCOUNTS }, (_, i) => String(200000000000 + i));
  const org = await startOrganizationTwins({ home: HOME, members: { workloads: members }, s3: false });
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
    const clients = createClients({ endpoint: org.home.endpoint });
    const before = org.home.requests();
    const started = performance.now();
    const reach = await resolveReach({ clients, policy, homeAccountId: HOME });
    const { report } = await runReadinessForAccounts(reach, { policy, now: NOW, reconcile: false });
    const seconds = (performance.now() - started) / 1000;
    const calls = org.home.requests() - before;
    const accounts = new Set(report.rows.map((r) => r.account)).size;
    return {
      [`readiness ${ACCOUNTS} accounts cells`]: `${report.summary.cells} in ${accounts} accounts (${report.summary.counts.ready} ready)`,
      [`readiness ${ACCOUNTS} accounts api calls`]: calls,
      [`readiness ${ACCOUNTS} accounts twin time s`]: seconds.toFixed(1),
    };
  } finally {
    await org.stop();
  }
}
