'use strict';
// Build-time resolver for serverless.yml (`${file(./lib/build/policy-env.cjs):policyJson}` and friends).
// The policy is validated here with the same schema the Lambdas use at cold start, so a bad ami-dr.config.yml
// fails `serverless package` naming the field, instead of failing every cold start after a deploy.
const { readFileSync } = require('node:fs');
const path = require('node:path');
const { parse: parseYaml } = require('yaml');
const tsx = require('tsx/cjs/api');

const ROOT = path.resolve(__dirname, '..', '..');

let cached;

function load() {
  if (cached) return cached;
  const file = path.resolve(ROOT, process.env.AMI_DR_POLICY_FILE || 'ami-dr.config.yml');
  const { parsePolicy } = tsx.require('../domain/policy.ts', __filename);
  let document;
  try {
    document = parseYaml(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw quiet(new Error(`cannot read policy ${path.relative(ROOT, file)}: ${cause.message}`));
  }
  try {
    cached = parsePolicy(document, path.relative(ROOT, file));
  } catch (error) {
    throw quiet(error);
  }
  return cached;
}

// osls prints the stack of a resolver's error; the policy's problems are the useful part.
function quiet(error) {
  error.stack = `${error.name}: ${error.message}`;
  return error;
}

const partitionArn = (rest) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:${rest}` });

/** Where each DR region's key lives, as an IAM resource and the conditions that pin it. */
function drKeys(policy = load()) {
  return policy.regions.dr.map(({ region, kmsKeyId }) => {
    const arn = /^arn:[^:]+:kms:([^:]+):(\d{12}):(key|alias)\/(.+)$/.exec(kmsKeyId);
    if (arn && arn[3] === 'key') return { region, Resource: kmsKeyId, Condition: {} };
    if (!arn && !kmsKeyId.startsWith('alias/')) {
      return { region, Resource: partitionArn(`kms:${region}:\${AWS::AccountId}:key/${kmsKeyId}`), Condition: {} };
    }
    // An alias authorizes nothing by itself: grant on the region's keys that carry the alias.
    const alias = arn ? `alias/${arn[4]}` : kmsKeyId;
    return {
      region,
      Resource: partitionArn(`kms:${region}:\${AWS::AccountId}:key/*`),
      Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias } },
    };
  });
}

const EBS_CRYPTO = ['kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncrypt*', 'kms:Decrypt'];

/**
 * EBS needs these on the destination key to write the encrypted copy, and on the source key to read an encrypted
 * source; both only through EC2 (kms:ViaService), the grant only for an AWS resource. DescribeKey is called
 * directly, to check a key before copying. The source key is whatever the producer used: any key of the account
 * in a source region, through EC2 (any region's endpoint) only.
 */
function copyKeyStatements(policy = load()) {
  const keys = [
    ...drKeys(policy),
    ...policy.regions.sources.map((region) => ({
      region,
      Resource: partitionArn(`kms:${region}:\${AWS::AccountId}:key/*`),
      Condition: {},
      source: true,
    })),
  ];
  return keys.flatMap(({ region, Resource, Condition, source }) => {
    // A DR key is used by EC2 in its own region. Which region's EC2 endpoint KMS sees when a copy in another region
    // reads the source key is not documented: any EC2 endpoint, still only through EC2.
    const via = source
      ? { ...Condition, StringLike: { 'kms:ViaService': 'ec2.*.amazonaws.com' } }
      : { ...Condition, StringEquals: { 'kms:ViaService': `ec2.${region}.amazonaws.com` } };
    return [
      {
        Effect: 'Allow',
        Action: ['kms:DescribeKey'],
        Resource,
        ...(Object.keys(Condition).length ? { Condition } : {}),
      },
      { Effect: 'Allow', Action: EBS_CRYPTO, Resource, Condition: via },
      {
        Effect: 'Allow',
        Action: ['kms:CreateGrant'],
        Resource,
        Condition: { ...via, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      },
    ];
  });
}

/** DescribeKey on the DR keys, for checks that a region's key exists and is enabled. */
function describeKeyStatements(policy = load()) {
  return drKeys(policy).map(({ Resource, Condition }) => ({
    Effect: 'Allow',
    Action: ['kms:DescribeKey'],
    Resource,
    ...(Object.keys(Condition).length ? { Condition } : {}),
  }));
}

/** Every region retention acts in: the policy's source regions, then its DR regions. */
function retentionRegions(policy = load()) {
  return [...new Set([...policy.regions.sources, ...policy.regions.dr.map((d) => d.region)])];
}

/** The objects of the buckets instance-store bundles may lie in (none: `[]`, and the statement is left out). */
function bundleObjectArns(policy = load()) {
  return (policy.retention.bundleBuckets ?? []).map((bucket) => partitionArn(`s3:::${bucket}/*`));
}

/** The bundle buckets themselves (ListBucket of the deletion journal's prefix). */
function bundleBucketArns(policy = load()) {
  return (policy.retention.bundleBuckets ?? []).map((bucket) => partitionArn(`s3:::${bucket}`));
}

/** The deletion journal's objects in the bundle buckets (lib/domain/journal.ts: JOURNAL_PREFIX). */
function journalObjectArns(policy = load()) {
  return (policy.retention.bundleBuckets ?? []).map((bucket) => partitionArn(`s3:::${bucket}/ami-dr/journal/*`));
}

/** What a consumer account's grant may allow: what EBS needs to launch from (and copy) a shared encrypted image. */
const consumerGrantOperations = () => [...tsx.require('../domain/key-access.ts', __filename).KEY_ACCESS_OPERATIONS];

/**
 * Sharing the DR keys with the accounts copies are shared with: grants to an account (its root, nothing else, with
 * those operations only) are not for an AWS resource, so they need their own statement. Readiness also reads the key
 * policy (organizations and OUs are checked against it) and retires ami-dr's grants no copy needs any more.
 */
function keyAccessStatements(policy = load(), { readiness = false } = {}) {
  return drKeys(policy).flatMap(({ Resource, Condition }) => {
    const pinned = Object.keys(Condition).length ? { Condition } : {};
    return [
      {
        Effect: 'Allow',
        // Readiness describes the keys under describeKeyStatements already.
        Action: readiness
          ? ['kms:ListGrants', 'kms:GetKeyPolicy', 'kms:RetireGrant']
          : ['kms:DescribeKey', 'kms:ListGrants'],
        Resource,
        ...pinned,
      },
      {
        Effect: 'Allow',
        Action: ['kms:CreateGrant'],
        Resource,
        Condition: {
          ...Condition,
          StringLike: { 'kms:GranteePrincipal': 'arn:aws*:iam::*:root' },
          'ForAllValues:StringEquals': { 'kms:GrantOperations': consumerGrantOperations() },
        },
      },
    ];
  });
}

/** Does the policy reach member accounts (lib/domain/organization.ts: reachesMembers)? */
const reachesMembers = (policy) => tsx.require('../domain/organization.ts', __filename).reachesMembers(policy);

/** The member roles' ARNs: each listed account's, or with `organization` (accounts discovered at run time) any account's. */
function memberRoleArns(policy) {
  const accounts = policy.organization ? ['*'] : (policy.accounts ?? []);
  return accounts.map((account) => partitionArn(`iam::${account}:role/${memberRoleName(policy)}`));
}

const memberRoleName = (policy) => (policy.organization?.memberRole ?? 'ami-dr-member').replace(/^\/+/, '');
/**
 * A restore drill launches copies encrypted under the DR keys: EBS uses the key as the caller, through EC2 only, and
 * its grant is for an AWS resource (ebs-encryption-requirements).
 */
function drillKeyStatements(policy = load()) {
  return drKeys(policy).flatMap(({ region, Resource, Condition }) => {
    const via = { ...Condition, StringEquals: { 'kms:ViaService': `ec2.${region}.amazonaws.com` } };
    return [
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:DescribeKey'], Resource, Condition: via },
      {
        Effect: 'Allow',
        Action: ['kms:CreateGrant'],
        Resource,
        Condition: { ...via, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      },
    ];
  });
}

/** The drill section, defaulted as lib/domain/policy.ts's drillSettings does (drills are opt-in). */
const drill = (policy = load()) => ({ enabled: false, schedule: 'rate(7 days)', ...(policy.drill ?? {}) });

/**
 * The roles ami-dr assumes in DR accounts (regions.dr[].account and .role); with none, the default role name in any
 * account, so a DR account added to the policy later needs no change of the statements' shape.
 */
function drRoleArns(policy = load()) {
  const { DEFAULT_DR_ROLE } = tsx.require('../domain/policy.ts', __filename);
  const arns = policy.regions.dr.flatMap((d) =>
    d.account ? [`arn:aws:iam::${d.account}:role/${d.role ?? DEFAULT_DR_ROLE}`] : [],
  );
  return arns.length ? [...new Set(arns)] : [`arn:aws:iam::*:role/${DEFAULT_DR_ROLE}`];
}

/** The roles restore drills assume in DR accounts (regions.dr[].account and .drillRole); none without DR accounts. */
function drillRoleArns(policy = load()) {
  const { DEFAULT_DRILL_ROLE } = tsx.require('../domain/policy.ts', __filename);
  const arns = policy.regions.dr.flatMap((d) =>
    d.account ? [`arn:aws:iam::${d.account}:role/${d.drillRole ?? DEFAULT_DRILL_ROLE}`] : [],
  );
  return [...new Set(arns)];
}

/** The DR accounts owning copies in `region` (regions.dr[].account): they forward the copies' events to its bus. */
function drAccountsIn(policy, region) {
  return [...new Set(policy.regions.dr.filter((d) => d.region === region && d.account).map((d) => d.account))];
}

/** The stack's region, as serverless.yml's provider.region resolves it (`--region`, default us-east-1). */
const stackRegion = async ({ resolveConfigurationProperty }) => resolveConfigurationProperty(['provider', 'region']);

module.exports = {
  /** `''` outside a region with DR-account copies (a CloudFormation condition keys off it), else the accounts. */
  drAccountEventSenders: async (params) => drAccountsIn(load(), await stackRegion(params)).join(','),
  drAccountEventSendersFor: (policy, region) => drAccountsIn(policy, region).join(','),
  /** The event bus policy's principals: those accounts (their forwarding rules' roles put the events). */
  drAccountEventPrincipals: async (params) =>
    drAccountsIn(load(), await stackRegion(params)).map((a) => partitionArn(`iam::${a}:root`)),
  drAccountEventPrincipalsFor: (policy, region) =>
    drAccountsIn(policy, region).map((a) => partitionArn(`iam::${a}:root`)),
  drillKeyStatements: () => drillKeyStatements(),
  drillKeyStatementsFor: (policy) => drillKeyStatements(policy),
  /** The drill function's schedule and whether it is on (`drill.enabled`). */
  drillSchedule: () => drill().schedule,
  drillEnabled: () => drill().enabled,
  /** `''` unless drills launch as a consumer account (a CloudFormation condition keys off it). */
  drillConsumerRoleArn: () => drill().consumerRoleArn ?? '',
  drRoleArns: () => drRoleArns(),
  /** `''` unless the policy has DR accounts (a CloudFormation condition keys off it). */
  hasDrAccounts: () => (drillRoleArns().length ? 'true' : ''),
  drillRoleArns: () => drillRoleArns(),
  drillRoleArnsFor: (policy) => drillRoleArns(policy),
  drRoleArnsFor: (policy) => drRoleArns(policy),
  retentionRegions: () => retentionRegions(),
  bundleObjectArns: () => bundleObjectArns(),
  bundleBucketArns: () => bundleBucketArns(),
  journalObjectArns: () => journalObjectArns(),
  /** The same for a given policy (the local runtime's roles). */
  retentionRegionsFor: (policy) => retentionRegions(policy),
  bundleObjectArnsFor: (policy) => bundleObjectArns(policy),
  bundleBucketArnsFor: (policy) => bundleBucketArns(policy),
  journalObjectArnsFor: (policy) => journalObjectArns(policy),
  /** `''` when the policy names no bundle bucket (a CloudFormation condition keys off it). */
  bundleBuckets: () => (load().retention.bundleBuckets ?? []).join(','),
  /** Statements for finalize (grants to consumer accounts) and readiness (also reads key policies, retires grants). */
  finalizeKeyStatements: () => keyAccessStatements(),
  readinessKeyStatements: () => keyAccessStatements(undefined, { readiness: true }),
  finalizeKeyStatementsFor: (policy) => keyAccessStatements(policy),
  readinessKeyStatementsFor: (policy) => keyAccessStatements(policy, { readiness: true }),
  /** The role assumed in member accounts (organization reach); a role name, with its path when it has one. */
  memberRoleName: () => memberRoleName(load()),
  memberRoleNameFor: (policy) => memberRoleName(policy),
  /** `''` unless the policy reaches member accounts (a CloudFormation condition keys off it). */
  reachesMembers: () => (reachesMembers(load()) ? 'true' : ''),
  /** `''` unless the policy discovers members under `organization` (a CloudFormation condition keys off it). */
  organizationOus: () => (load().organization ? 'true' : ''),
  /** The member roles the scheduled units assume: the listed accounts', any account's with `organization`. */
  memberRoleArns: () => memberRoleArns(load()),
  memberRoleArnsFor: (policy) => memberRoleArns(policy),
  /** The policy as the JSON string Lambdas read from AMI_DR_POLICY. */
  policyJson: () => JSON.stringify(load()),
  /** Statements for the copy role: DR keys (encrypt) and source keys (decrypt). */
  copyKeyStatements: () => copyKeyStatements(),
  describeKeyStatements: () => describeKeyStatements(),
  /** The same statements for a given policy (the local runtime's roles). */
  copyKeyStatementsFor: (policy) => copyKeyStatements(policy),
  describeKeyStatementsFor: (policy) => describeKeyStatements(policy),
  /** `''` when the policy names no report bucket (a CloudFormation condition keys off it). */
  reportBucket: () => load().retention.reportBucket ?? '',
  reportPrefix: () => load().retention.reportPrefix,
  notificationTopicArn: () => load().notifications.snsTopicArn ?? '',
  sourceRegions: () => load().regions.sources,
  /** The home region's default (serverless.yml's custom.home): the policy's first source region. */
  homeRegion: () => load().regions.sources[0],
  drRegions: () => load().regions.dr.map((d) => d.region),
};
