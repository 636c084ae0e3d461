import { createHash } from 'node:crypto';
import * as z from 'zod';

/**
 * The ami-dr policy: one document that says which images matter, where their copies go and under which
 * keys, how copies are made, and when images are old enough to remove. Parsed once (at build and at cold
 * start) into a frozen, typed object; a bad policy fails with every problem named by its field.
 */

// A 2–4 letter prefix (us, cn, eusc for the European Sovereign Cloud), one to three words (gov, iso, de, east), a number.
export const REGION = /^[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}$/;
const ACCOUNT = /^\d{12}$/;
const ORG_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]{10,32}$/;
const OU_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;
const KMS_KEY =
  /^(alias\/[a-zA-Z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key\/[a-zA-Z0-9-]+|alias\/[a-zA-Z0-9/_-]+))$/;
// A root (r-…) or an organizational unit (ou-<root>-<suffix>), as ListAccountsForParent takes them.
const PARENT_ID = /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/;
// IAM role names (with an optional path) and STS's ExternalId characters.
const ROLE_NAME = /^(\/[\w+=,.@-]+)*\/?[\w+=,.@-]{1,64}$/;
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
const SNS_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/;

const region = z.string().regex(REGION, 'is not an AWS region name (like us-east-1)');
const accountId = z.string().regex(ACCOUNT, 'is not a 12-digit AWS account id');
const tagMap = z.record(z.string().min(1).max(128), z.string().max(256));
/**
 * Bounds that keep a typo from silently turning retention off: EC2 deprecates at most 10 years ahead, and a family
 * of more than 1000 kept images is a policy that keeps everything.
 */
export const MAX_RETENTION_DAYS = 3650;
export const MAX_KEEP_LATEST = 1000;
const days = z
  .number()
  .int('must be a whole number of days')
  .nonnegative('must not be negative')
  .max(MAX_RETENTION_DAYS, `must be at most ${MAX_RETENTION_DAYS} (10 years, the longest EC2 deprecation)`);

const selectorSchema = z.strictObject({
  /** Tags an image must carry (every one, exact value; '*' accepts any value). */
  includeTags: tagMap.default({}),
  /** An image carrying any of these (exact value; '*' any value) is out of scope. */
  excludeTags: tagMap.default({}),
  /** Glob patterns (`*`, `?`) on the image name; empty means every name. */
  namePatterns: z.array(z.string().min(1)).default([]),
  excludeNamePatterns: z.array(z.string().min(1)).default([]),
});

const drRegionSchema = z.strictObject({
  region,
  /** Customer-managed key in that region (in `account`, when set): key id, alias/name, key ARN or alias ARN. */
  kmsKeyId: z.string().regex(KMS_KEY, 'is not a KMS key id, alias or ARN'),
  /** An isolated DR account that owns the copies in this region (absent: ami-dr's own account). */
  account: accountId.optional(),
  /** The role ami-dr assumes in `account` to copy (default `ami-dr-replicator`, as deploy/dr-account.yml names it). */
  role: z.string().regex(ROLE_NAME, 'is not an IAM role name').optional(),
  /** The role restore drills assume in `account` (default `ami-dr-drill`, as deploy/dr-account.yml names it). */
  drillRole: z.string().regex(ROLE_NAME, 'is not an IAM role name').optional(),
  /** Deregistration protection on this region's copies (default: on in a DR account, else replication's setting). */
  deregistrationProtection: z.boolean().optional(),
});

const launchPermissionsSchema = z.strictObject({
  userIds: z.array(accountId).default([]),
  organizationArns: z.array(z.string().regex(ORG_ARN, 'is not an organization ARN')).default([]),
  organizationalUnitArns: z.array(z.string().regex(OU_ARN, 'is not an organizational unit ARN')).default([]),
  /** Public sharing. Refused for encrypted copies, which every EBS copy is. */
  public: z.boolean().default(false),
});

const replicationSchema = z.strictObject({
  copyTags: z.boolean().default(true),
  /** Source tag keys never copied (globs); `aws:` tags are never copied. */
  tagDenyList: z.array(z.string().min(1)).default([]),
  extraTags: tagMap.default({}),
  copyLaunchPermissions: z.boolean().default(true),
  addLaunchPermissions: launchPermissionsSchema.prefault({}),
  /**
   * How the accounts, organizations and OUs a copy is shared with get to use its DR key: `check` (the default)
   * reports those the key does not let launch; `grant` also gives accounts KMS grants (organizations and OUs need a
   * key-policy statement either way). Absent means `check`, so policies written before it keep their fingerprint.
   */
  keyAccess: z.enum(['check', 'grant']).optional(),
  /**
   * Keep the source shared with the DR accounts (launch permission, snapshots, key grant) after their copies are
   * done; by default the share is removed once the replication ends. Absent means false (fingerprints unchanged).
   */
  keepSourceShare: z.boolean().optional(),
  /** Grant createVolumePermission on the copy's snapshots to the accounts the image is shared with. */
  shareSnapshots: z.boolean().default(false),
  copyDeprecation: z.boolean().default(true),
  deregistrationProtection: z.boolean().default(false),
  /** Time-based copy (SnapshotCopyCompletionDurationMinutes): 15 to 2880, in steps of 15. */
  copyCompletionMinutes: z
    .number()
    .int()
    .min(15, 'must be at least 15')
    .max(2880, 'must be at most 2880')
    .refine((m) => m % 15 === 0, 'must be a multiple of 15')
    .optional(),
  maxConcurrentRegions: z.number().int().min(1).max(40).default(5),
  /** A copy not `available` this long after it started is failed and cleaned up. */
  deadlineHours: z.number().positive().max(72).default(24),
});

const familySchema = z.strictObject({
  /** Images with equal values of this tag form a family; without it, the name minus its version suffix does. */
  tag: z.string().min(1).optional(),
});

/**
 * Organization reach: the member accounts ami-dr works in, each through a role there (deploy/member-account.yml).
 * `ous` names the roots or OUs whose active accounts are discovered (Organizations ListAccountsForParent); without
 * it, every active account of the organization is (ListAccounts). Optional as a whole: a policy without it governs
 * the deployment's own account only, and keeps its fingerprint.
 */
const organizationSchema = z.strictObject({
  ous: z.array(z.string().regex(PARENT_ID, 'is not an organizational unit id (ou-…) or root id (r-…)')).optional(),
  /** The role ami-dr assumes in each member account (the member template's role name). */
  memberRole: z.string().regex(ROLE_NAME, 'is not an IAM role name').default('ami-dr-member'),
  /** Passed as sts:ExternalId; the member role's trust policy requires it when set there. */
  externalId: z.string().regex(EXTERNAL_ID, 'must be 2-1224 letters, digits or +=,.@:/-_').optional(),
});

const retentionScopeSchema = z.strictObject({
  deprecateAfterDays: days.optional(),
  deregisterAfterDays: days.optional(),
  keepLatest: z
    .number()
    .int('must be a whole number')
    .nonnegative('must not be negative')
    .max(MAX_KEEP_LATEST, `must be at most ${MAX_KEEP_LATEST}`)
    .default(0),
  family: familySchema.prefault({}),
  /**
   * An aged image under deregistration protection has it turned off and is then removed, instead of being kept:
   * for the retention a DR account runs over its own copies (protected from the production account, not from it).
   */
  releaseProtection: z.boolean().optional(),
});

/** General-purpose bucket naming rules: 3-63 chars, lowercase letters, digits, dots, hyphens; no IP address, no `..`. */
const S3_BUCKET_NAME =
  /^(?!\d+\.\d+\.\d+\.\d+$)(?!xn--)(?!sthree-)(?!.*\.\.)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const retentionSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    sources: retentionScopeSchema.prefault({}),
    replicas: retentionScopeSchema.prefault({}),
    protectInUse: z.boolean().default(true),
    /** Keep a replica while its source image still exists. */
    keepReplicasOfLiveSources: z.boolean().default(true),
    /** Opt-in needed for a scope that removes aged images with keepLatest 0 (could remove every image in scope). */
    allowRemovingAll: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    /** Where run reports go, when set: s3 bucket and key prefix. */
    reportBucket: z.string().min(3).optional(),
    reportPrefix: z.string().default('ami-dr/reports/'),
    /**
     * The S3 buckets instance-store bundles may be read and deleted in (the retention role may touch no other); an
     * instance-store image whose bundle lies elsewhere is kept. None: instance-store images are never removed. The
     * deletion journal's objects (`ami-dr/journal/`) live in these too, and every run finishes their open entries.
     */
    bundleBuckets: z
      .array(
        z.string().regex(S3_BUCKET_NAME, 'is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)'),
      )
      .max(100)
      .optional(),
    /** Estimated EBS snapshot price, for the report's monthly saving. */
    snapshotPricePerGbMonth: z.number().nonnegative().default(0.05),
    /** Opt-in sweep of snapshots left behind by images that are gone (lib/domain/orphan-sweep.ts). */
    orphanSweep: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** Report the candidates only (default). `false` deletes them, on a run that is not a dry-run. */
        dryRun: z.boolean().default(true),
        minAgeDays: z.number().int().min(1).max(3650).default(30),
      })
      .prefault({}),
  })
  .superRefine((r, ctx) => {
    for (const scope of ['sources', 'replicas'] as const) {
      const s = r[scope];
      if (
        s.deprecateAfterDays !== undefined &&
        s.deregisterAfterDays !== undefined &&
        s.deregisterAfterDays < s.deprecateAfterDays
      ) {
        ctx.addIssue({
          code: 'custom',
          path: [scope, 'deregisterAfterDays'],
          message: 'must not be less than deprecateAfterDays',
        });
      }
      if (s.deregisterAfterDays !== undefined && s.keepLatest === 0 && !r.allowRemovingAll) {
        ctx.addIssue({
          code: 'custom',
          path: [scope, 'keepLatest'],
          message: 'is 0, so every image in scope could be removed; set keepLatest or retention.allowRemovingAll: true',
        });
      }
    }
  });

const SUBNET = /^subnet-[0-9a-f]{8,17}$/;
const SECURITY_GROUP = /^sg-[0-9a-f]{8,17}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

/**
 * Restore drills: the newest copy of each family in each DR region is launched, checked and terminated. Opt-in;
 * absent means off (and leaves the policy's fingerprint as it was before drills existed).
 */
const drillSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** EventBridge schedule of the drill function. */
  schedule: z
    .string()
    .regex(/^(rate|cron)\(.+\)$/, 'is not an EventBridge schedule expression (rate(...) or cron(...))')
    .default('rate(7 days)'),
  /** At most this many drills per run (newest copies first). */
  maxDrills: z.number().int().min(1).max(100).default(10),
  /** At most this many instance-minutes per run: every drill reserves its whole launch timeout. */
  maxInstanceMinutes: z.number().int().min(1).max(6000).default(120),
  /** A drill not `running` with passing status checks this long after launch fails (status check). */
  launchTimeoutMinutes: z.number().int().min(1).max(60).default(15),
  /** Instance type per architecture (`x86_64`, `arm64`, `i386`), instead of the smallest that fits. */
  instanceTypes: z
    .partialRecord(z.enum(['x86_64', 'arm64', 'i386']), z.string().regex(INSTANCE_TYPE, 'is not an instance type'))
    .default({}),
  /** Per DR region: the subnet and security groups to launch in (default: the region's default VPC). */
  network: z
    .record(
      region,
      z.strictObject({
        subnetId: z.string().regex(SUBNET, 'is not a subnet id').optional(),
        securityGroupIds: z.array(z.string().regex(SECURITY_GROUP, 'is not a security group id')).max(5).optional(),
      }),
    )
    .default({}),
  /** Launch as a consumer account: the role (in that account) ami-dr assumes to run the drills. */
  consumerRoleArn: z.string().regex(ROLE_ARN, 'is not an IAM role ARN').optional(),
});

export const policySchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 letters, digits, _ or -')
      .default('default'),
    selector: selectorSchema.prefault({}),
    /** Member accounts governed through their ami-dr-member role, besides the deployment's own account. */
    accounts: z.array(accountId).optional(),
    organization: organizationSchema.optional(),
    regions: z.strictObject({
      sources: z.array(region).min(1, 'needs at least one source region'),
      dr: z.array(drRegionSchema).min(1, 'needs at least one DR region'),
    }),
    replication: replicationSchema.prefault({}),
    retention: retentionSchema.prefault({}),
    drill: drillSchema.optional(),
    notifications: z
      .strictObject({ snsTopicArn: z.string().regex(SNS_ARN, 'is not an SNS topic ARN').optional() })
      .prefault({}),
  })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.regions.dr.forEach((d, i) => {
      if (seen.has(d.region))
        ctx.addIssue({ code: 'custom', path: ['regions', 'dr', i, 'region'], message: `${d.region} is listed twice` });
      seen.add(d.region);
      if (d.role && !d.account)
        ctx.addIssue({
          code: 'custom',
          path: ['regions', 'dr', i, 'role'],
          message: 'needs account (the role is assumed there)',
        });
      if (p.regions.sources.includes(d.region))
        ctx.addIssue({
          code: 'custom',
          path: ['regions', 'dr', i, 'region'],
          message: `${d.region} is also a source region; a DR region must be another region`,
        });
    });
    p.accounts?.forEach((a, i) => {
      if (p.accounts?.indexOf(a) !== i)
        ctx.addIssue({ code: 'custom', path: ['accounts', i], message: `${a} is listed twice` });
    });
    p.organization?.ous?.forEach((ou, i) => {
      if (p.organization?.ous?.indexOf(ou) !== i)
        ctx.addIssue({ code: 'custom', path: ['organization', 'ous', i], message: `${ou} is listed twice` });
    });
    if (p.organization?.ous?.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['organization', 'ous'],
        message: 'is empty; omit it to reach every account of the organization',
      });
    if (p.replication.addLaunchPermissions.public) {
      ctx.addIssue({
        code: 'custom',
        path: ['replication', 'addLaunchPermissions', 'public'],
        message: 'copies are encrypted, and encrypted images cannot be made public',
      });
    }
  });

export type Policy = z.infer<typeof policySchema>;
export type DrRegion = Policy['regions']['dr'][number];
export type OrganizationReach = NonNullable<Policy['organization']>;
export type RetentionScope = Policy['retention']['sources'];

export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(
    readonly problems: string[],
    source = 'policy',
  ) {
    super(`${source} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Validates a parsed document (from YAML or JSON) and returns the frozen policy, or throws a PolicyError naming every bad field. */
export function parsePolicy(document: unknown, source?: string): Readonly<Policy> {
  // YAML reads an empty file (or one of only comments) as null.
  if (document === null || document === undefined)
    throw new PolicyError(['(policy): is empty; a policy needs at least regions.sources and regions.dr'], source);
  const result = policySchema.safeParse(document);
  if (!result.success) {
    throw new PolicyError(
      result.error.issues.flatMap((i) => {
        const at = i.path.join('.');
        if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at ? `${at}.` : ''}${k}: is not a known field`);
        return [`${at || '(policy)'}: ${i.message}`];
      }),
      source,
    );
  }
  return deepFreeze(result.data);
}

/** A short, stable fingerprint of the policy's content, part of execution names and provenance tags. */
export function policyVersion(policy: Policy): string {
  // Parsed policies are frozen, so the fingerprint of one object never changes; it is asked for per image.
  const cached = Object.isFrozen(policy) ? versions.get(policy) : undefined;
  if (cached) return cached;
  const version = createHash('sha256').update(stableJson(policy)).digest('hex').slice(0, 8);
  if (Object.isFrozen(policy)) versions.set(policy, version);
  return version;
}

const versions = new WeakMap<Policy, string>();

export type DrillSettings = z.infer<typeof drillSchema>;

/** `drill`, defaulted (off). */
export const drillSettings = (policy: Policy): DrillSettings => policy.drill ?? drillSchema.parse({});

/** `replication.keyAccess`, defaulted. */
export const keyAccessMode = (policy: Policy): 'check' | 'grant' => policy.replication.keyAccess ?? 'check';

/** The role ami-dr assumes in a DR account when the policy names none (deploy/dr-account.yml's default). */
export const DEFAULT_DR_ROLE = 'ami-dr-replicator';

/** The role restore drills assume in a DR account when the policy names none (deploy/dr-account.yml's default). */
export const DEFAULT_DRILL_ROLE = 'ami-dr-drill';

/** The DR accounts the policy copies into, each once. */
export const drAccounts = (policy: Policy): string[] => [
  ...new Set(policy.regions.dr.flatMap((d) => (d.account ? [d.account] : []))),
];

export function drRegion(policy: Policy, region: string): DrRegion | undefined {
  return policy.regions.dr.find((d) => d.region === region);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
