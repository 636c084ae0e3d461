import { EC2Client } from '@aws-sdk/client-ec2';
import { assumedClients } from '../../../lib/aws/assume-role.ts';
import { ec2Client, type Clients } from '../../../lib/aws/clients.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import type { Summary } from '../../../lib/domain/replication-steps.ts';
import { startOrJoinReplication, type StartedReplication } from '../../../lib/workflows/replication.ts';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../../local/runtime/runtime.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import type { TwinAccount } from '../../../local/twin/twin.ts';

export const START = Date.UTC(2026, 0, 1);
export const SOURCE = 'us-east-1';
/** us-west-2's copies go to the DR account; eu-west-1's stay in ami-dr's own account. */
export const VAULT_REGION = 'us-west-2';
export const OWN_REGION = 'eu-west-1';
export const DR_ACCOUNT = '222222222222';
export const PRODUCTION = '111111111111';

export function drPolicy(
  overrides: { replication?: Record<string, unknown>; vault?: Record<string, unknown> } = {},
): Readonly<Policy> {
  return parsePolicy({
    regions: {
      sources: [SOURCE],
      dr: [
        { region: VAULT_REGION, kmsKeyId: 'alias/ami-dr-vault', account: DR_ACCOUNT, ...overrides.vault },
        { region: OWN_REGION, kmsKeyId: 'alias/ami-dr' },
      ],
    },
    replication: { ...overrides.replication },
  });
}

export interface DrHarness {
  rt: LocalRuntime;
  clock: ManualClock;
  vault: TwinAccount;
  /** The source key (customer managed) in the source region. */
  sourceKey: string;
  vaultKey: string;
}

export async function drHarness(
  policy = drPolicy(),
  options: Pick<LocalRuntimeOptions, 'wrapTask' | 'twinOptions'> = {},
): Promise<DrHarness> {
  const clock = new ManualClock(START);
  const rt = await startLocalRuntime({
    ...options,
    policy,
    clock,
    twinOptions: { ...options.twinOptions, accountId: PRODUCTION, s3: false },
  });
  const vault = rt.twin.addAccount(DR_ACCOUNT);
  const vaultKey = vault.seed.key(VAULT_REGION, { alias: 'ami-dr-vault' }).arn;
  rt.twin.seed.key(OWN_REGION, { alias: 'ami-dr' });
  const sourceKey = rt.twin.seed.key(SOURCE, { alias: 'builds' }).arn;
  return { rt, clock, vault, sourceKey, vaultKey };
}

/** An available source image in the source region, its snapshot encrypted under `kmsKeyId` (none: unencrypted). */
export function seedSource(h: DrHarness, name: string, kmsKeyId?: string): string {
  return h.rt.twin.seed.image(SOURCE, {
    name,
    tags: { Team: 'platform' },
    creationDate: new Date(h.clock.now() - 60_000).toISOString(),
    volumes: [{ sizeGiB: 8, ...(kmsKeyId ? { encrypted: true, kmsKeyId } : {}) }],
  });
}

export async function replicate(h: DrHarness, imageId: string): Promise<StartedReplication> {
  return startOrJoinReplication(
    { clients: h.rt.clientsFor('onImageEvent'), policy: h.rt.policy, stateMachineArn: h.rt.stateMachineArn(SOURCE) },
    SOURCE,
    imageId,
  );
}

export function summaryOf(h: DrHarness, imageId: string): Summary {
  const done = h.rt
    .executions()
    .filter((e) => e.status === 'SUCCEEDED' && e.output)
    .map((e) => JSON.parse(e.output as string) as Summary)
    .filter((s) => s.source.imageId === imageId);
  if (done.length !== 1) throw new Error(`expected one finished replication of ${imageId}, got ${done.length}`);
  return done[0]!;
}

/** The DR account's images in a region (any state), straight from the twin. */
export const vaultImages = (h: DrHarness, region = VAULT_REGION) => [...h.vault.state.region(region).images.values()];

/** A session of the role ami-dr's copy tasks assume in the DR account, as the production account gets it. */
export async function replicatorSession(h: DrHarness): Promise<EC2Client> {
  const clients: Clients = await assumedClients(
    h.rt.clientsFor('startCopy'),
    `arn:aws:iam::${DR_ACCOUNT}:role/ami-dr-replicator`,
    VAULT_REGION,
  );
  return ec2Client(clients, VAULT_REGION);
}
