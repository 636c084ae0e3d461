import type { ImageRecord, LaunchPermission } from '../domain/image.ts';
import { keyAccessMode, type Policy } from '../domain/policy.ts';
import {
  computeReadiness,
  imageKey,
  planReconciliation,
  type ReadinessInput,
  type ReadinessReport,
  type ReconciliationPlan,
  type RepairAction,
} from '../domain/readiness.ts';
import { TAG, REPLICA_ROLE } from '../domain/tags.ts';
import { describeKey } from '../aws/account.ts';
import { type Clients, ec2Client, kmsClient, s3Client } from '../aws/clients.ts';
import { describeSnapshotKeys, listImages } from '../aws/images.ts';
import {
  addLaunchPermissions,
  getLaunchPermissions,
  removeLaunchPermissions,
  setDeprecation,
  tagResources,
} from '../aws/permissions.ts';
import { putJsonReport } from '../aws/reports.ts';
import { grantKeyToAccount, readKeyAccess, retireKeyGrant } from '../aws/key-access.ts';
import { planGrants, type KeyAccess } from '../domain/key-access.ts';
import { startOrJoinReplication, type StartedReplication } from './replication.ts';
import { reachDrAccounts, targetAccount } from './dr-account.ts';
import { forEachLimited } from './concurrency.ts';

/** What readiness reads, re-drives, repairs and writes; serverless.yml's readiness role grants exactly these. */
export const REQUIRED_PERMISSIONS = [
  'ec2:DescribeImages',
  'ec2:DescribeImageAttribute',
  'ec2:DescribeSnapshots',
  'kms:DescribeKey',
  'kms:GetKeyPolicy',
  'kms:ListGrants',
  'kms:CreateGrant',
  'kms:RetireGrant',
  'ec2:CreateTags',
  'ec2:ModifyImageAttribute',
  'ec2:EnableImageDeprecation',
  'states:StartExecution',
  'states:DescribeExecution',
  's3:PutObject',
] as const;

/** DescribeImageAttribute is one call per image: at most this many in flight per run. */
const ATTRIBUTE_CONCURRENCY = 8;

export type ProgressFn = (text: string) => void;

/**
 * The inventory readiness needs: owned images of the source regions, ami-dr's copies in every DR region (by their
 * role tag, so pending ones too), each DR key's identities, and launch permissions of the copies that exist and
 * of their sources (one call per image: only for those).
 */
export async function collectReadinessInput(
  clients: Clients,
  policy: Readonly<Policy>,
  now: number,
  onProgress?: ProgressFn,
): Promise<ReadinessInput> {
  onProgress?.('listing images');
  // A DR account's regions are read through its replicator role (Describe*, its keys' policy and grants); a region
  // whose role cannot be assumed is not read, and its cells say why.
  const reach = await reachDrAccounts({ clients, policy });
  const unreachable = Object.fromEntries(
    reach.problems.map((p) => [p.region, `DR account ${p.account} cannot be read: ${p.message}`]),
  );
  const readable = policy.regions.dr.filter((d) => !(d.region in unreachable));
  const [sourceLists, copyLists, keyLists] = await Promise.all([
    Promise.all(
      policy.regions.sources.map((region) => listImages(ec2Client(clients, region), region, { owners: ['self'] })),
    ),
    Promise.all(
      readable.map((d) =>
        listImages(ec2Client(reach.clientsFor(d.region), d.region), d.region, {
          owners: ['self'],
          filters: { [`tag:${TAG.role}`]: [REPLICA_ROLE] },
        }),
      ),
    ),
    Promise.all(
      readable.map(async (d) => {
        const kms = kmsClient(reach.clientsFor(d.region), d.region);
        const key = await describeKey(kms, d.kmsKeyId);
        // Who may use the key: read once per key, not per copy.
        const access = key && key.state === 'Enabled' ? await readKeyAccess(kms, key.arn) : undefined;
        return [
          d.region,
          { ids: key ? [d.kmsKeyId, key.arn, key.keyId] : [d.kmsKeyId], state: key?.state ?? 'NotFound', access },
        ] as const;
      }),
    ),
  ]);
  const input: ReadinessInput = {
    policy,
    now,
    sources: sourceLists.flat(),
    copies: copyLists.flat(),
    launchPermissions: new Map(),
    keyIds: Object.fromEntries(keyLists.map(([region, key]) => [region, key.ids])),
    keyStates: Object.fromEntries(keyLists.map(([region, key]) => [region, key.state])),
    keyAccess: Object.fromEntries(
      keyLists.flatMap(([region, key]): [string, KeyAccess][] => (key.access ? [[region, key.access]] : [])),
    ),
    unreachable,
  };

  // A first pass without permissions says which copies are usable; only they (and their sources) are worth a call.
  const wanted = new Map<string, { region: string; imageId: string }>();
  for (const row of computeReadiness(input).rows) {
    for (const cell of row.cells) {
      if (!cell.copyImageId || (cell.status !== 'ready' && cell.status !== 'drifted')) continue;
      wanted.set(imageKey(cell.region, cell.copyImageId), { region: cell.region, imageId: cell.copyImageId });
      if (policy.replication.copyLaunchPermissions)
        wanted.set(imageKey(row.sourceRegion, row.sourceImageId), {
          region: row.sourceRegion,
          imageId: row.sourceImageId,
        });
    }
  }
  // DescribeImages does not say which key encrypts a snapshot; DescribeSnapshots does (a call per 200 snapshots).
  const copies = await withSnapshotKeys(reach.clientsFor, input.copies, new Set([...wanted.keys()]));

  const permissions = new Map<string, LaunchPermission[]>();
  let done = 0;
  await forEachLimited([...wanted.values()], ATTRIBUTE_CONCURRENCY, async ({ region, imageId }) => {
    permissions.set(
      imageKey(region, imageId),
      await getLaunchPermissions(ec2Client(reach.clientsFor(region), region), imageId),
    );
    done++;
    if (done % 50 === 0) onProgress?.(`reading launch permissions ${done}/${wanted.size}`);
  });
  return { ...input, copies, launchPermissions: permissions };
}

async function withSnapshotKeys(
  clientsFor: (region: string) => Clients,
  copies: readonly ImageRecord[],
  usable: Set<string>,
): Promise<ImageRecord[]> {
  const idsByRegion = new Map<string, string[]>();
  for (const copy of copies) {
    if (!usable.has(imageKey(copy.region, copy.imageId))) continue;
    const ids = idsByRegion.get(copy.region) ?? [];
    ids.push(...copy.snapshots.filter((s) => !s.kmsKeyId).map((s) => s.snapshotId));
    idsByRegion.set(copy.region, ids);
  }
  const keys = new Map<string, { encrypted?: boolean; kmsKeyId?: string }>();
  await Promise.all(
    [...idsByRegion].map(async ([region, ids]) => {
      for (const [id, key] of await describeSnapshotKeys(ec2Client(clientsFor(region), region), ids))
        keys.set(`${region}/${id}`, key);
    }),
  );
  if (keys.size === 0) return [...copies];
  return copies.map((copy) => ({
    ...copy,
    snapshots: copy.snapshots.map((s) => ({ ...s, ...(keys.get(`${copy.region}/${s.snapshotId}`) ?? {}) })),
  }));
}

export interface RedriveOutcome extends StartedReplication {
  sourceRegion: string;
  sourceImageId: string;
  regions: string[];
}

export interface RepairOutcome {
  region: string;
  copyImageId: string;
  sourceImageId: string;
  applied: ('tags' | 'launch-permissions' | 'deprecation' | 'key-access')[];
}

export interface ReconcileError {
  action: 'redrive' | 'repair';
  region: string;
  imageId: string;
  message: string;
}

export interface ReconcileResult {
  redriven: RedriveOutcome[];
  repaired: RepairOutcome[];
  /** ami-dr's grants retired because no copy under the key is shared with their account any more. */
  retiredGrants?: { region: string; keyArn: string; account: string }[];
  manual: ReconciliationPlan['manual'];
  errors: ReconcileError[];
}

export interface ReconcileOptions {
  /** The replication state machine of a source region (ami-dr is deployed in each source region). */
  stateMachineArnFor(sourceRegion: string): string;
  /** Milliseconds since the epoch: re-drives back off after the previous attempt ended (see redriveBackoffMs). */
  now: number;
  onProgress?: ProgressFn;
  /**
   * The plan is a member account's: re-drives start the home account's replication (its clients) for the member's
   * image, which then works in the member under its role, as for the member's forwarded image events.
   */
  member?: { account: string; home: Clients };
}

/**
 * Acts on a reconciliation plan. Re-drives start the replication under the same deterministic name the event
 * handler uses, so an execution in flight is joined, never doubled; only when that execution has already ended and
 * the image is still not ready does a numbered re-drive (attempt 1, 2, ...) start. Each action's failure is
 * recorded and the others go on.
 */
export async function reconcile(
  clients: Clients,
  policy: Readonly<Policy>,
  plan: ReconciliationPlan,
  copies: readonly ImageRecord[],
  options: ReconcileOptions,
): Promise<ReconcileResult> {
  const result: ReconcileResult = { redriven: [], repaired: [], manual: plan.manual, errors: [] };
  for (const action of plan.redrive) {
    options.onProgress?.(`re-driving ${action.sourceImageId}`);
    try {
      result.redriven.push(
        await redrive(clients, policy, action.sourceRegion, action.sourceImageId, action.regions, options),
      );
    } catch (error) {
      result.errors.push({
        action: 'redrive',
        region: action.sourceRegion,
        imageId: action.sourceImageId,
        message: (error as Error).message,
      });
    }
  }
  const byId = new Map(copies.map((c) => [imageKey(c.region, c.imageId), c]));
  const granted = new Set<string>();
  for (const action of plan.repair) {
    options.onProgress?.(`repairing ${action.copyImageId} in ${action.region}`);
    try {
      result.repaired.push(
        await repair(clients, action, byId.get(imageKey(action.region, action.copyImageId)), granted),
      );
    } catch (error) {
      result.errors.push({
        action: 'repair',
        region: action.region,
        imageId: action.copyImageId,
        message: (error as Error).message,
      });
    }
  }
  return result;
}

async function redrive(
  clients: Clients,
  policy: Readonly<Policy>,
  region: string,
  imageId: string,
  regions: string[],
  options: ReconcileOptions,
): Promise<RedriveOutcome> {
  const stateMachineArn = options.stateMachineArnFor(region);
  const { member } = options;
  const starter = { clients: member?.home ?? clients, policy, stateMachineArn };
  const started = await startOrJoinReplication(starter, region, imageId, {
    redrive: true,
    backoffNow: options.now,
    ...(member ? { account: member.account } : {}),
  });
  return { sourceRegion: region, sourceImageId: imageId, regions, ...started };
}

async function repair(
  clients: Clients,
  action: RepairAction,
  copy: ImageRecord | undefined,
  /** `keyArn|account` granted earlier in this run: copies sharing a key and an account need one grant. */
  granted: Set<string>,
): Promise<RepairOutcome> {
  const ec2 = ec2Client(clients, action.region);
  const applied: RepairOutcome['applied'] = [];
  if (action.tags && Object.keys(action.tags).length) {
    // Replication tags the copy's snapshots too; so does the repair.
    await tagResources(ec2, [action.copyImageId, ...(copy?.snapshots.map((s) => s.snapshotId) ?? [])], action.tags);
    applied.push('tags');
  }
  if (action.launchPermissions) {
    await addLaunchPermissions(ec2, action.copyImageId, action.launchPermissions.add);
    await removeLaunchPermissions(ec2, action.copyImageId, action.launchPermissions.remove);
    applied.push('launch-permissions');
  }
  if (action.deprecateAt) {
    await setDeprecation(ec2, action.copyImageId, action.deprecateAt);
    applied.push('deprecation');
  }
  if (action.keyAccess) {
    const { keyArn, accounts } = action.keyAccess;
    for (const account of accounts) {
      if (granted.has(`${keyArn}|${account}`)) continue;
      await grantKeyToAccount(kmsClient(clients, action.region), keyArn, account);
      granted.add(`${keyArn}|${account}`);
    }
    applied.push('key-access');
  }
  return { region: action.region, copyImageId: action.copyImageId, sourceImageId: action.sourceImageId, applied };
}

export interface ReadinessRunOptions {
  clients: Clients;
  policy: Readonly<Policy>;
  /** Milliseconds since the epoch. */
  now: number;
  /** Re-drive missing/failed images and repair drifted copies (needs stateMachineArnFor). */
  reconcile: boolean;
  stateMachineArnFor?: (sourceRegion: string) => string;
  /** Write the JSON report here when set (the policy's report bucket). */
  report?: { bucket: string; prefix: string; region: string; key?: string };
  onProgress?: ProgressFn;
  /** The account read, in a run over several: its rows carry it. */
  account?: string;
  /**
   * `account` is a member and these are the home account's clients: they start its re-drives (see ReconcileOptions)
   * and write the report to the home account's bucket.
   */
  homeClients?: Clients;
}

export interface ReadinessRun {
  report: ReadinessReport;
  plan: ReconciliationPlan;
  reconciliation?: ReconcileResult;
  reportLocation?: string;
}

/**
 * A DR account's copies are sealed once finished: ami-dr's role there can no longer change them, so their drift is
 * reported (the cell stays `drifted`, naming the account) but not repaired; re-drives of missing copies stay.
 */
function withoutSealedRepairs(plan: ReconciliationPlan, policy: Readonly<Policy>): ReconciliationPlan {
  const sealed = plan.repair.filter((a) => targetAccount(policy, a.region));
  if (sealed.length === 0) return plan;
  return {
    ...plan,
    repair: plan.repair.filter((a) => !sealed.includes(a)),
    manual: [
      ...plan.manual,
      ...sealed.map((a) => ({
        region: a.region,
        copyImageId: a.copyImageId,
        sourceImageId: a.sourceImageId,
        reason: `sealed copy in DR account ${targetAccount(policy, a.region)}: only the DR account's own role can change it`,
      })),
    ],
  };
}

/** One readiness run: inventory, matrix, plan; then (when asked) reconciliation and the report in S3. */
export async function runReadiness(options: ReadinessRunOptions): Promise<ReadinessRun> {
  const { clients, policy, now } = options;
  const input = await collectReadinessInput(clients, policy, now, options.onProgress);
  const report = computeReadiness(input);
  if (options.account) for (const row of report.rows) row.account = options.account;
  const plan = withoutSealedRepairs(planReconciliation(report), policy);
  const run: ReadinessRun = { report, plan };
  if (options.reconcile) {
    const arnFor = options.stateMachineArnFor;
    if (!arnFor && plan.redrive.length)
      throw new Error('re-driving replication needs the state machine ARN (STATE_MACHINE_ARN)');
    run.reconciliation = await reconcile(clients, policy, plan, input.copies, {
      stateMachineArnFor: arnFor ?? (() => ''),
      now,
      onProgress: options.onProgress,
      ...(options.account && options.homeClients
        ? { member: { account: options.account, home: options.homeClients } }
        : {}),
    });
    if (keyAccessMode(policy) === 'grant')
      run.reconciliation.retiredGrants = await retireStaleGrants(clients, input, plan);
  }
  if (options.report) {
    const key =
      options.report.key ?? `${options.report.prefix}readiness/${report.generatedAt.replace(/[:.]/g, '-')}.json`;
    await putJsonReport(s3Client(options.homeClients ?? clients, options.report.region), options.report.bucket, key, {
      ...report,
      reconciliation: run.reconciliation,
    });
    run.reportLocation = `s3://${options.report.bucket}/${key}`;
  }
  return run;
}

/**
 * Retires ami-dr's grants for accounts no copy under the key is shared with any more (after this run's repairs).
 * A region with a copy whose permissions were not read (in progress) keeps its grants: its sharing is not known.
 */
async function retireStaleGrants(
  clients: Clients,
  input: ReadinessInput,
  plan: ReconciliationPlan,
): Promise<NonNullable<ReconcileResult['retiredGrants']>> {
  const retired: NonNullable<ReconcileResult['retiredGrants']> = [];
  const repairs = new Map(plan.repair.map((a) => [imageKey(a.region, a.copyImageId), a]));
  for (const [region, access] of Object.entries(input.keyAccess ?? {})) {
    // A DR account's key is its own: ami-dr grants nothing on it, so it retires nothing there either.
    if (targetAccount(input.policy, region)) continue;
    const copies = input.copies.filter((c) => c.region === region && c.state !== 'deregistered');
    const keep = new Set<string>();
    let known = true;
    for (const copy of copies) {
      const have = input.launchPermissions.get(imageKey(region, copy.imageId));
      if (!have) {
        if (copy.state !== 'failed' && copy.state !== 'error' && copy.state !== 'invalid') known = false;
        continue;
      }
      const change = repairs.get(imageKey(region, copy.imageId))?.launchPermissions;
      const removed = new Set((change?.remove ?? []).flatMap((p) => (p.userId ? [p.userId] : [])));
      for (const p of [...have, ...(change?.add ?? [])]) if (p.userId && !removed.has(p.userId)) keep.add(p.userId);
    }
    if (!known) continue;
    for (const grant of planGrants(access, [], keep).retire) {
      await retireKeyGrant(kmsClient(clients, region), access.keyArn, grant.grantId);
      retired.push({ region, keyArn: access.keyArn, account: grant.name!.slice('ami-dr-'.length) });
    }
  }
  return retired;
}
