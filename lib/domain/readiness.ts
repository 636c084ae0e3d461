import { describeVerification, drillVerification } from './drill.ts';
import { IN_PROGRESS_STATES, permissionKey, type ImageRecord, type LaunchPermission } from './image.ts';
import { consumerLabel, consumersOf, missingKeyAccess, type KeyAccess } from './key-access.ts';
import { keyAccessMode, policyVersion, type Policy } from './policy.ts';
import { compileSelector } from './selector.ts';
import { TAG, isReplica } from './tags.ts';
import {
  copyTags,
  deprecationFor,
  launchPermissionsFor,
  PublicEncryptedImageError,
  publicSourceRefusal,
} from './replication.ts';

/**
 * DR readiness: for every in-scope source image and every DR region, is there a usable copy that is what the
 * policy requires? Pure: inventories, launch permissions and `now` in; a matrix, a summary and a plan out.
 */

export const STATUSES = ['ready', 'in-progress', 'missing', 'failed', 'drifted'] as const;
export type ReadinessStatus = (typeof STATUSES)[number];

export const DRIFT_KINDS = ['key', 'key-access', 'tags', 'launch-permissions', 'deprecation'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export type Drift =
  | { kind: 'key'; detail: string; expected: string; actual: string[] }
  /** Consumers the copy is shared with that its DR key does not let launch; `grant`: the accounts a grant fixes. */
  | { kind: 'key-access'; detail: string; keyArn: string; missing: string[]; grant: string[] }
  | { kind: 'tags'; detail: string; set: Record<string, string> }
  | { kind: 'launch-permissions'; detail: string; add: LaunchPermission[]; remove: LaunchPermission[] }
  | { kind: 'deprecation'; detail: string; deprecateAt: string };

export interface ReadinessCell {
  region: string;
  /** The DR account the region's copies live in (absent: ami-dr's own account). */
  account?: string;
  status: ReadinessStatus;
  /** Why it is not ready: the copy's StateReason, the drift found, or what is still happening. */
  reason?: string;
  copyImageId?: string;
  copyState?: string;
  drift: Drift[];
  /** Re-driving cannot help until someone acts (the reason says why): a source replication refuses, an unusable DR key. */
  refused?: true;
  /** Copy time (replicated-at or creation) minus source creation; for copies not there yet, now minus source creation. */
  lagSeconds: number;
  /** The copy's last restore drill (its ami-dr:drilled-at tag): `verified 3 days ago`, or the failure. */
  verified?: string;
}

export interface ReadinessRow {
  /** The account owning the source (and its copies); set by runs over several accounts. */
  account?: string;
  sourceImageId: string;
  sourceRegion: string;
  name: string;
  sourceState: string;
  createdAt: string;
  ageSeconds: number;
  /** Ready in every DR region. */
  protected: boolean;
  cells: ReadinessCell[];
}

export interface ReadinessSummary {
  images: number;
  cells: number;
  counts: Record<ReadinessStatus, number>;
  /** Ready cells over all cells (1 when there is nothing to protect). */
  readyRatio: number;
  /** Source images not ready in every DR region. */
  imagesNotReady: number;
  /** Age of the oldest source image not ready in every DR region; 0 when all are. */
  oldestUnprotectedAgeSeconds: number;
  maxLagSeconds: number;
  /** Lag of copies that exist and are usable (ready or drifted). */
  medianLagSeconds: number;
}

export interface ReadinessReport {
  generatedAt: string;
  policy: { name: string; version: string };
  sourceRegions: string[];
  drRegions: string[];
  /** DR regions whose copies a DR account owns, by region. */
  drAccounts?: Record<string, string>;
  rows: ReadinessRow[];
  summary: ReadinessSummary;
  /** Runs over several accounts: each account's outcome (a member whose role is missing is reported here). */
  accounts?: AccountOutcome[];
}

export interface AccountOutcome {
  account: string;
  /** `ok`, or why the account was not read: `role-missing` (AssumeRole refused) or `failed`. */
  status: 'ok' | 'role-missing' | 'failed';
  message?: string;
}

export interface ReadinessInput {
  policy: Policy;
  /** Milliseconds since the epoch. */
  now: number;
  /** Images in the source regions (replicas and out-of-scope images are skipped here). */
  sources: readonly ImageRecord[];
  /** Copies in the DR regions, found by provenance tags, pending ones included. */
  copies: readonly ImageRecord[];
  /** Launch permissions by `imageKey(region, imageId)`; needed for available copies and their sources. */
  launchPermissions: ReadonlyMap<string, readonly LaunchPermission[]>;
  /** Every identifier the DR region's key is known by (ARN, key id, alias, alias ARN); region => ids. */
  keyIds: Readonly<Record<string, readonly string[]>>;
  /** The DR key's KeyState per region (`NotFound` when it does not exist); absent: not read, assumed usable. */
  keyStates?: Readonly<Record<string, string>>;
  /** The DR key's policy and grants per region; absent: not read, key access not checked. */
  keyAccess?: Readonly<Record<string, KeyAccess>>;
  /** DR regions whose account could not be read (its role not assumable), with why: nothing there is known. */
  unreachable?: Readonly<Record<string, string>>;
}

export const imageKey = (region: string, imageId: string): string => `${region}/${imageId}`;

/** Which copy speaks for a region when several exist (a failed one and its retry, say). */
const COPY_PREFERENCE: Record<string, number> = {
  available: 0,
  pending: 1,
  transient: 1,
  disabled: 2,
  failed: 3,
  error: 3,
  invalid: 3,
};

/** A DR region as reports name it: `us-west-2`, or `us-west-2 (222222222222)` when a DR account owns its copies. */
export function drRegionLabel(report: Pick<ReadinessReport, 'drAccounts'>, region: string): string {
  const account = report.drAccounts?.[region];
  return account ? `${region} (${account})` : region;
}

export function computeReadiness(input: ReadinessInput): ReadinessReport {
  const { policy, now } = input;
  const drRegions = policy.regions.dr.map((d) => d.region);
  const accounts = policy.regions.dr.flatMap((d) => (d.account ? [[d.region, d.account] as const] : []));
  const copiesBySource = indexCopies(input.copies, drRegions);
  const selects = compileSelector(policy.selector);

  const rows: ReadinessRow[] = [];
  for (const source of input.sources) {
    if (!policy.regions.sources.includes(source.region)) continue;
    if (isReplica(source.tags) || !selects(source).match) continue;
    if (source.state !== 'available' && source.state !== 'pending') continue;
    const ageSeconds = secondsBetween(Date.parse(source.creationDate), now);
    const required = requirementsOf(input, source);
    const cells = policy.regions.dr
      .filter((d) => d.region !== source.region)
      .map((dr) => {
        const cell = cellFor(
          input,
          source,
          required,
          dr.region,
          copiesBySource.get(copyIndexKey(source.region, source.imageId, dr.region)) ?? [],
          ageSeconds,
        );
        return dr.account ? { ...cell, account: dr.account } : cell;
      });
    rows.push({
      sourceImageId: source.imageId,
      sourceRegion: source.region,
      name: source.name,
      sourceState: source.state,
      createdAt: source.creationDate,
      ageSeconds,
      protected: cells.every((c) => c.status === 'ready'),
      cells,
    });
  }
  rows.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.sourceImageId.localeCompare(b.sourceImageId));
  return {
    generatedAt: new Date(now).toISOString(),
    policy: { name: policy.name, version: policyVersion(policy) },
    sourceRegions: [...policy.regions.sources],
    drRegions,
    ...(accounts.length ? { drAccounts: Object.fromEntries(accounts) } : {}),
    rows,
    summary: summarize(rows),
  };
}

/** What every copy of this source must carry: the same in each DR region, so worked out once per source. */
interface Requirements {
  tags: Record<string, string>;
  /** Launch permissions by encryption (instance-store copies stay unencrypted); undefined when the source's are unknown. */
  permissions(encrypted: boolean): LaunchPermission[] | undefined;
  deprecateAt?: string;
}

function requirementsOf(input: ReadinessInput, source: ImageRecord): Requirements {
  const { policy } = input;
  // Provenance tags found the copy; the policy tag changes with every policy edit and is not the user's concern.
  // A finalized copy also carries replicated-at, which takes one of the 50 tags: counted, or the tag it displaced
  // would be required, "repaired" and refused by EC2 on every run.
  const tags = Object.fromEntries(
    Object.entries(copyTags(source, policy, new Date(input.now).toISOString()).tags).filter(
      ([k]) => !k.startsWith('ami-dr:'),
    ),
  );
  const sourcePermissions = input.launchPermissions.get(imageKey(source.region, source.imageId));
  const known = sourcePermissions !== undefined || !policy.replication.copyLaunchPermissions;
  const byEncryption = new Map<boolean, LaunchPermission[]>();
  return {
    tags,
    permissions(encrypted) {
      if (!known) return undefined;
      let wanted = byEncryption.get(encrypted);
      if (!wanted) {
        wanted = requiredPermissions(policy, [...(sourcePermissions ?? [])], encrypted);
        byEncryption.set(encrypted, wanted);
      }
      return wanted;
    },
    deprecateAt: deprecationFor(source.deprecationTime, policy, new Date(input.now)),
  };
}

function cellFor(
  input: ReadinessInput,
  source: ImageRecord,
  required: Requirements,
  region: string,
  copies: ImageRecord[],
  ageSeconds: number,
): ReadinessCell {
  const copy = [...copies].sort(
    (a, b) =>
      (COPY_PREFERENCE[a.state] ?? 9) - (COPY_PREFERENCE[b.state] ?? 9) || b.creationDate.localeCompare(a.creationDate),
  )[0];
  const unreachable = input.unreachable?.[region];
  if (unreachable)
    return { region, status: 'failed', reason: unreachable, refused: true, drift: [], lagSeconds: ageSeconds };
  if (source.state === 'pending') {
    return {
      region,
      status: 'in-progress',
      reason: 'source image is still pending',
      drift: [],
      lagSeconds: ageSeconds,
    };
  }
  const refusal =
    publicSourceRefusal(input.policy, source) ??
    (source.rootDeviceType === 'ebs' ? unusableKey(input, region) : undefined);
  if (!copy) {
    if (refusal) return { region, status: 'failed', reason: refusal, refused: true, drift: [], lagSeconds: ageSeconds };
    return { region, status: 'missing', reason: 'no copy in this region', drift: [], lagSeconds: ageSeconds };
  }
  const base = { region, copyImageId: copy.imageId, copyState: copy.state };
  if (IN_PROGRESS_STATES.has(copy.state))
    return { ...base, status: 'in-progress', reason: `copy is ${copy.state}`, drift: [], lagSeconds: ageSeconds };
  if (copy.state !== 'available') {
    // failed, error, invalid, disabled, deregistered: not a copy to launch from
    if (refusal)
      return { ...base, status: 'failed', reason: refusal, refused: true, drift: [], lagSeconds: ageSeconds };
    const why = copy.stateReason ? `copy ${copy.state}: ${copy.stateReason}` : `copy is ${copy.state}`;
    return { ...base, status: 'failed', reason: why, drift: [], lagSeconds: ageSeconds };
  }
  const lagSeconds = copyLag(source, copy);
  const drift = driftOf(input, required, copy);
  const drilled = drillVerification(copy.tags, input.now);
  const verified = drilled ? { verified: describeVerification(drilled) } : {};
  if (drift.length)
    return {
      ...base,
      status: 'drifted',
      reason: drift.map((d) => d.detail).join('; '),
      drift,
      lagSeconds,
      ...verified,
    };
  return { ...base, status: 'ready', drift: [], lagSeconds, ...verified };
}

/** A DR key that is disabled, pending deletion or missing fails every copy into its region: why, or undefined. */
function unusableKey(input: ReadinessInput, region: string): string | undefined {
  const state = input.keyStates?.[region];
  if (state === undefined || state === 'Enabled') return undefined;
  const keyId = input.policy.regions.dr.find((d) => d.region === region)?.kmsKeyId ?? '';
  return state === 'NotFound'
    ? `DR key ${keyId} does not exist in ${region}`
    : `DR key ${keyId} is ${state}: copies into ${region} fail until it is enabled`;
}

/** StartCopy re-encrypts EBS copies and refuses a public source (its copy could not be public): no run will copy it. */
function driftOf(input: ReadinessInput, required: Requirements, copy: ImageRecord): Drift[] {
  const { policy } = input;
  const drift: Drift[] = [];

  // Instance-store copies cannot be re-encrypted, so there is no key to hold them to.
  if (copy.rootDeviceType === 'ebs') {
    const expected = policy.regions.dr.find((d) => d.region === copy.region)?.kmsKeyId ?? '';
    const known = new Set([expected, ...(input.keyIds[copy.region] ?? [])]);
    // A snapshot whose key was not read is not evidence of drift.
    const actual = [
      ...new Set(
        copy.snapshots.flatMap((s) => (s.encrypted === false ? ['unencrypted'] : s.kmsKeyId ? [s.kmsKeyId] : [])),
      ),
    ];
    const wrong = actual.filter((k) => !known.has(k));
    const keys = wrong.filter((k) => k !== 'unencrypted');
    const detail = [
      ...(wrong.includes('unencrypted') ? [`not encrypted`] : []),
      ...(keys.length ? [`encrypted with ${keys.join(', ')}`] : []),
    ].join(' and ');
    if (wrong.length) drift.push({ kind: 'key', detail: `${detail}; expected ${expected}`, expected, actual });
  }

  const copyPermissions = input.launchPermissions.get(imageKey(copy.region, copy.imageId));
  const wanted = required.permissions(copy.rootDeviceType === 'ebs');
  // Under the wrong key, who may use the DR key does not matter: the copy has to be made again.
  if (!drift.some((d) => d.kind === 'key')) drift.push(...keyAccessDrift(input, copy, wanted ?? copyPermissions));

  const set: Record<string, string> = {};
  const missing: string[] = [];
  const changed: string[] = [];
  for (const [key, value] of Object.entries(required.tags)) {
    if (copy.tags[key] === value) continue;
    set[key] = value;
    (copy.tags[key] === undefined ? missing : changed).push(key);
  }
  if (missing.length || changed.length) {
    const parts = [
      missing.length ? `missing ${missing.join(', ')}` : '',
      changed.length ? `changed ${changed.join(', ')}` : '',
    ].filter(Boolean);
    drift.push({ kind: 'tags', detail: `tags ${parts.join('; ')}`, set });
  }

  // Unknown permissions (not fetched) are not evidence of drift.
  if (copyPermissions && wanted) {
    const wantedKeys = new Set(wanted.map(permissionKey));
    const haveKeys = new Set(copyPermissions.map(permissionKey));
    const add = wanted.filter((p) => !haveKeys.has(permissionKey(p)));
    const remove = copyPermissions.filter((p) => !wantedKeys.has(permissionKey(p)));
    if (add.length || remove.length) {
      const parts = [
        add.length ? `not shared with ${add.map(permissionKey).join(', ')}` : '',
        remove.length ? `shared with ${remove.map(permissionKey).join(', ')} beyond the policy` : '',
      ].filter(Boolean);
      drift.push({ kind: 'launch-permissions', detail: `launch permissions ${parts.join('; ')}`, add, remove });
    }
  }

  // A copy may carry a deprecation time of its own (retention sets one); only a source's time is required.
  const deprecateAt = required.deprecateAt;
  if (deprecateAt) {
    const have = copy.deprecationTime ? minute(copy.deprecationTime) : undefined;
    if (have !== minute(deprecateAt)) {
      drift.push({
        kind: 'deprecation',
        detail:
          have === undefined
            ? `deprecation time missing (source: ${deprecateAt})`
            : `deprecation time ${copy.deprecationTime}, source ${deprecateAt}`,
        deprecateAt,
      });
    }
  }
  return drift;
}

/** The consumers (those the copy is, or once repaired will be, shared with) its DR key does not let launch it. */
function keyAccessDrift(
  input: ReadinessInput,
  copy: ImageRecord,
  permissions: readonly LaunchPermission[] | undefined,
): Drift[] {
  const access = input.keyAccess?.[copy.region];
  if (!access || !permissions || copy.rootDeviceType !== 'ebs') return [];
  const missing = missingKeyAccess(access, consumersOf(permissions));
  if (missing.length === 0) return [];
  const names = missing.map(consumerLabel);
  const grant =
    keyAccessMode(input.policy) === 'grant' ? missing.flatMap((c) => (c.kind === 'account' ? [c.id] : [])) : [];
  return [
    { kind: 'key-access', detail: `key access: ${names.join(', ')}`, keyArn: access.keyArn, missing: names, grant },
  ];
}

/** What replication would share the copy with; a public source cannot make its encrypted copy public, so that part is left out. */
function requiredPermissions(
  policy: Policy,
  sourcePermissions: LaunchPermission[],
  encrypted: boolean,
): LaunchPermission[] {
  try {
    return launchPermissionsFor(sourcePermissions, policy, encrypted);
  } catch (error) {
    if (!(error instanceof PublicEncryptedImageError)) throw error;
    return launchPermissionsFor(
      sourcePermissions.filter((p) => p.group !== 'all'),
      policy,
      encrypted,
    );
  }
}

/** The totals of a set of rows (one account's, or several accounts' rows together). */
export function summarize(rows: readonly ReadinessRow[]): ReadinessSummary {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<ReadinessStatus, number>;
  const usableLags: number[] = [];
  let maxLag = 0;
  let oldest = 0;
  let cells = 0;
  for (const row of rows) {
    for (const cell of row.cells) {
      cells++;
      counts[cell.status]++;
      maxLag = Math.max(maxLag, cell.lagSeconds);
      if (cell.status === 'ready' || cell.status === 'drifted') usableLags.push(cell.lagSeconds);
    }
    if (!row.protected) oldest = Math.max(oldest, row.ageSeconds);
  }
  usableLags.sort((a, b) => a - b);
  return {
    images: rows.length,
    cells,
    counts,
    readyRatio: cells === 0 ? 1 : counts.ready / cells,
    imagesNotReady: rows.filter((r) => !r.protected).length,
    oldestUnprotectedAgeSeconds: oldest,
    maxLagSeconds: maxLag,
    medianLagSeconds: usableLags.length ? (usableLags[Math.floor((usableLags.length - 1) / 2)] ?? 0) : 0,
  };
}

// ---- reconciliation plan ----

export interface RedriveAction {
  sourceRegion: string;
  sourceImageId: string;
  /** DR regions that are missing or failed. */
  regions: string[];
  reason: string;
}

export interface RepairAction {
  region: string;
  copyImageId: string;
  sourceImageId: string;
  sourceRegion: string;
  tags?: Record<string, string>;
  launchPermissions?: { add: LaunchPermission[]; remove: LaunchPermission[] };
  deprecateAt?: string;
  /** Accounts to grant the DR key to. */
  keyAccess?: { keyArn: string; accounts: string[] };
  reason: string;
}

export interface ReconciliationPlan {
  /** Start (or join) the replication of these sources. */
  redrive: RedriveAction[];
  /** Re-apply tags, permissions, deprecation on these copies. */
  repair: RepairAction[];
  /** Drift ami-dr does not repair by itself: a copy under the wrong key needs a new copy. */
  manual: { region: string; copyImageId: string; sourceImageId: string; reason: string }[];
}

export function planReconciliation(report: ReadinessReport): ReconciliationPlan {
  const plan: ReconciliationPlan = { redrive: [], repair: [], manual: [] };
  for (const row of report.rows) {
    const gaps = row.cells.filter((c) => (c.status === 'missing' || c.status === 'failed') && !c.refused);
    if (gaps.length) {
      plan.redrive.push({
        sourceRegion: row.sourceRegion,
        sourceImageId: row.sourceImageId,
        regions: gaps.map((c) => c.region),
        reason: gaps.map((c) => `${c.region}: ${c.status}${c.reason ? ` (${c.reason})` : ''}`).join('; '),
      });
    }
    for (const cell of row.cells) {
      if (cell.status !== 'drifted' || !cell.copyImageId) continue;
      const action: RepairAction = {
        region: cell.region,
        copyImageId: cell.copyImageId,
        sourceImageId: row.sourceImageId,
        sourceRegion: row.sourceRegion,
        reason: '',
      };
      const reasons: string[] = [];
      for (const d of cell.drift) {
        if (d.kind === 'tags') action.tags = d.set;
        else if (d.kind === 'launch-permissions') action.launchPermissions = { add: d.add, remove: d.remove };
        else if (d.kind === 'deprecation') action.deprecateAt = d.deprecateAt;
        else if (d.kind === 'key-access') {
          if (d.grant.length) {
            action.keyAccess = { keyArn: d.keyArn, accounts: d.grant };
            reasons.push(`key access: ${d.grant.join(', ')}`);
          }
          const rest = d.missing.filter((m) => !d.grant.includes(m));
          if (rest.length)
            plan.manual.push({
              region: cell.region,
              copyImageId: cell.copyImageId,
              sourceImageId: row.sourceImageId,
              reason: `key access: ${rest.join(', ')}: the key policy of ${d.keyArn} must allow them (ami-dr validate prints the statement)`,
            });
          continue;
        } else {
          plan.manual.push({
            region: cell.region,
            copyImageId: cell.copyImageId,
            sourceImageId: row.sourceImageId,
            reason: `${d.detail}: re-encryption needs a new copy`,
          });
          continue;
        }
        reasons.push(d.detail);
      }
      if (reasons.length) plan.repair.push({ ...action, reason: reasons.join('; ') });
    }
  }
  return plan;
}

// ---- helpers ----

const copyIndexKey = (sourceRegion: string, sourceImageId: string, region: string): string =>
  `${sourceRegion}|${sourceImageId}|${region}`;

function indexCopies(copies: readonly ImageRecord[], drRegions: readonly string[]): Map<string, ImageRecord[]> {
  const index = new Map<string, ImageRecord[]>();
  for (const copy of copies) {
    if (!isReplica(copy.tags) || !drRegions.includes(copy.region) || copy.state === 'deregistered') continue;
    const sourceImageId = copy.tags[TAG.sourceImageId];
    const sourceRegion = copy.tags[TAG.sourceRegion];
    if (!sourceImageId || !sourceRegion) continue;
    const key = copyIndexKey(sourceRegion, sourceImageId, copy.region);
    const list = index.get(key);
    if (list) list.push(copy);
    else index.set(key, [copy]);
  }
  return index;
}

function copyLag(source: ImageRecord, copy: ImageRecord): number {
  const replicatedAt = Date.parse(copy.tags[TAG.replicatedAt] ?? '');
  const copiedAt = Number.isFinite(replicatedAt) ? replicatedAt : Date.parse(copy.creationDate);
  return secondsBetween(Date.parse(source.creationDate), copiedAt);
}

function secondsBetween(from: number, to: number): number {
  if (!Number.isFinite(from) || !Number.isFinite(to)) return 0;
  return Math.max(0, Math.round((to - from) / 1000));
}

/** EC2 keeps deprecation times to the minute. */
function minute(iso: string): number {
  return Math.round(Date.parse(iso) / 60_000);
}
