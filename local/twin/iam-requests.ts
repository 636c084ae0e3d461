import { createHash } from 'node:crypto';
import { Ec2Params } from './ec2-params.ts';
import type { TwinRequest } from './http.ts';
import type { AuthRequest } from './iam.ts';
import { snapshotIdsOf, type TwinImage, type TwinState } from './state.ts';

/**
 * What AWS authorizes for one call: the action on its resources with their condition keys, plus the permissions AWS
 * documents as checked behind the call (local/README.md names each page): DescribeImageReferences reads SSM
 * parameters and Image Builder recipes as the caller; an instance-store CopyImage reads the source bundle and writes
 * the copy's bucket as the caller; an encrypted CopyImage uses the source and destination keys through EC2; tags
 * given at creation need ec2:CreateTags with `ec2:CreateAction`.
 */

const REFERENCE_READS = [
  'ssm:DescribeParameters',
  'ssm:GetParameters',
  'imagebuilder:ListImageRecipes',
  'imagebuilder:ListContainerRecipes',
  'imagebuilder:GetContainerRecipe',
];
const INSTANCE_STORE_COPY_WRITES = ['s3:CreateBucket', 's3:PutBucketOwnershipControls'];
const SOURCE_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey'];
const DESTINATION_KEY_ACTIONS = [
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:DescribeKey',
];

const tagContext = (prefix: string, tags: Map<string, string> | undefined) =>
  Object.fromEntries([...(tags ?? [])].map(([k, v]) => [`${prefix}/${k}`, v]));

function imageArn(region: string, imageId: string): string {
  return `arn:aws:ec2:${region}::image/${imageId}`;
}

export function ec2Requests(
  request: TwinRequest,
  state: TwinState,
  accountId: string,
  accounts?: ReadonlyMap<string, TwinState>,
): AuthRequest[] {
  const { action, region } = request;
  const params = new Ec2Params(request.params);
  const base = { 'aws:RequestedRegion': region };
  const image = (id: string | undefined) => (id ? state.region(region).images.get(id) : undefined);
  const onImage = (id: string | undefined): AuthRequest => ({
    action: `ec2:${action}`,
    resource: id ? imageArn(region, id) : '*',
    context: { ...base, ...tagContext('aws:ResourceTag', image(id)?.tags) },
  });
  const snapshotArn = (id: string) => `arn:aws:ec2:${region}:${accountId}:snapshot/${id}`;
  switch (action) {
    case 'CopyImage':
      return copyImageRequests(params, region, state, accountId, accounts);
    case 'DeregisterImage':
    case 'ModifyImageAttribute':
    case 'EnableImageDeprecation':
    case 'DisableImageDeprecation':
    case 'EnableImageDeregistrationProtection':
    case 'DisableImageDeregistrationProtection':
    case 'DisableImage':
    case 'EnableImage':
    case 'DescribeImageAttribute':
      return [onImage(params.get('ImageId'))];
    case 'DeleteSnapshot':
    case 'ModifySnapshotAttribute':
    case 'DescribeSnapshotAttribute': {
      const id = params.get('SnapshotId') ?? '';
      const snapshot = state.region(region).snapshots.get(id);
      return [
        {
          action: `ec2:${action}`,
          resource: snapshotArn(id),
          context: { ...base, ...tagContext('aws:ResourceTag', snapshot?.tags) },
        },
      ];
    }
    case 'CreateTags':
    case 'DeleteTags': {
      const tags = params.structs('Tag').map((t) => [t.get('Key') ?? '', t.get('Value') ?? ''] as const);
      const request = { ...tagContext('aws:RequestTag', new Map(tags)), 'aws:TagKeys': tags.map(([k]) => k) };
      return params.list('ResourceId').map((id) => {
        const resource = id.startsWith('snap-')
          ? { arn: snapshotArn(id), tags: state.region(region).snapshots.get(id)?.tags }
          : { arn: imageArn(region, id), tags: image(id)?.tags };
        return {
          action: `ec2:${action}`,
          resource: resource.arn,
          context: { ...base, ...request, ...tagContext('aws:ResourceTag', resource.tags) },
        };
      });
    }
    case 'RunInstances':
      return runInstancesRequests(params, region, state, accountId);
    case 'TerminateInstances':
      return params.list('InstanceId').map((id) => ({
        action: 'ec2:TerminateInstances',
        resource: `arn:aws:ec2:${region}:${accountId}:instance/${id}`,
        context: { ...base, ...tagContext('aws:ResourceTag', state.region(region).instances.get(id)?.tags) },
      }));
    case 'DescribeImageReferences':
      return [
        { action: 'ec2:DescribeImageReferences', resource: '*', context: base },
        ...REFERENCE_READS.map((a) => ({
          action: a,
          resource: '*',
          context: { ...base, 'aws:CalledVia': ['ec2-images.amazonaws.com'] },
        })),
      ];
    default:
      return [{ action: `ec2:${action}`, resource: '*', context: base }];
  }
}

/**
 * RunInstances is authorized on every resource it uses or creates (service authorization reference, Amazon EC2:
 * RunInstances): the image (its tags as `aws:ResourceTag`), the instance and its volumes and network interface (the
 * launch's tags as `aws:RequestTag`), the subnet and security groups; tags given at launch also need
 * ec2:CreateTags with `ec2:CreateAction = RunInstances` on each tagged resource type.
 */
function runInstancesRequests(params: Ec2Params, region: string, state: TwinState, accountId: string): AuthRequest[] {
  const base = { 'aws:RequestedRegion': region };
  const imageId = params.get('ImageId') ?? '';
  const own = (type: string, id = '*') => `arn:aws:ec2:${region}:${accountId}:${type}/${id}`;
  let specs = new Map<string, Map<string, string>>();
  try {
    specs = params.tagSpecifications(['instance', 'volume', 'network-interface']);
  } catch {
    // RunInstances reports a bad TagSpecification itself.
  }
  const requested = (type: string) => {
    const tags = specs.get(type);
    return tags?.size ? { ...tagContext('aws:RequestTag', tags), 'aws:TagKeys': [...tags.keys()] } : {};
  };
  const interfaces = params.structs('NetworkInterface');
  const subnet = params.get('SubnetId') ?? interfaces[0]?.get('SubnetId');
  const groups = [...params.list('SecurityGroupId'), ...(interfaces[0]?.list('SecurityGroupId') ?? [])];
  const requests: AuthRequest[] = [
    {
      action: 'ec2:RunInstances',
      resource: imageArn(region, imageId),
      context: { ...base, ...tagContext('aws:ResourceTag', state.region(region).images.get(imageId)?.tags) },
    },
    { action: 'ec2:RunInstances', resource: own('instance'), context: { ...base, ...requested('instance') } },
    { action: 'ec2:RunInstances', resource: own('volume'), context: { ...base, ...requested('volume') } },
    {
      action: 'ec2:RunInstances',
      resource: own('network-interface'),
      context: { ...base, ...requested('network-interface') },
    },
    { action: 'ec2:RunInstances', resource: own('subnet', subnet), context: base },
    ...(groups.length ? groups : ['*']).map((g) => ({
      action: 'ec2:RunInstances',
      resource: own('security-group', g),
      context: base,
    })),
  ];
  for (const [type, tags] of specs) {
    if (tags.size === 0) continue;
    requests.push({
      action: 'ec2:CreateTags',
      resource: own(type),
      context: { ...base, 'ec2:CreateAction': 'RunInstances', ...requested(type) },
    });
  }
  // Volumes from encrypted snapshots: EBS uses their keys as the caller, through EC2 (ebs-encryption-requirements).
  const image = state.region(region).images.get(imageId);
  const keys = new Set<string>();
  for (const id of image ? snapshotIdsOf(image) : []) {
    const ref = state.region(region).snapshots.get(id)?.kmsKeyId;
    const key = ref ? state.resolve(region, ref) : undefined;
    if (key && key.arn.split(':')[4] === accountId) keys.add(key.arn);
  }
  for (const keyArn of keys) {
    const via = { ...base, 'kms:ViaService': `ec2.${region}.amazonaws.com`, ...aliasContext(state, keyArn) };
    requests.push(...LAUNCH_KEY_USE.map((action) => ({ action, resource: keyArn, context: via })), {
      action: 'kms:CreateGrant',
      resource: keyArn,
      context: { ...via, 'kms:GrantIsForAWSResource': 'true' },
    });
  }
  return requests;
}

const LAUNCH_KEY_USE = ['kms:Decrypt', 'kms:DescribeKey'];

/** The snapshots deleted with an image (DeregisterImage with DeleteAssociatedSnapshots), each as ec2:DeleteSnapshot. */
export function deleteSnapshotRequest(state: TwinState, region: string, accountId: string, snapshotId: string) {
  const snapshot = state.region(region).snapshots.get(snapshotId);
  return {
    action: 'ec2:DeleteSnapshot',
    resource: `arn:aws:ec2:${region}:${accountId}:snapshot/${snapshotId}`,
    context: { 'aws:RequestedRegion': region, ...tagContext('aws:ResourceTag', snapshot?.tags) },
  };
}

function copyImageRequests(
  params: Ec2Params,
  region: string,
  state: TwinState,
  accountId: string,
  accounts?: ReadonlyMap<string, TwinState>,
): AuthRequest[] {
  const sourceRegion = params.get('SourceRegion') ?? region;
  const sourceId = params.get('SourceImageId') ?? '';
  // A source shared by another account on the twin lives in that account's state (its snapshots and keys too).
  const sourceState =
    [state, ...(accounts?.values() ?? [])].find((s) => s.region(sourceRegion).images.has(sourceId)) ?? state;
  const source: TwinImage | undefined = sourceState.region(sourceRegion).images.get(sourceId);
  const base = { 'aws:RequestedRegion': region };
  const requests: AuthRequest[] = [
    {
      action: 'ec2:CopyImage',
      resource: imageArn(sourceRegion, sourceId),
      context: { ...base, ...tagContext('aws:ResourceTag', source?.tags) },
    },
  ];
  let specs = new Map<string, Map<string, string>>();
  try {
    specs = params.tagSpecifications(['image', 'snapshot']);
  } catch {
    // A bad TagSpecification is CopyImage's own error to report (InvalidParameterValue).
  }
  for (const [type, tags] of specs) {
    if (tags.size === 0) continue;
    requests.push({
      action: 'ec2:CreateTags',
      resource: `arn:aws:ec2:${region}:${type === 'image' ? '' : accountId}:${type}/*`,
      context: {
        ...base,
        'ec2:CreateAction': 'CopyImage',
        ...tagContext('aws:RequestTag', tags),
        'aws:TagKeys': [...tags.keys()],
      },
    });
  }
  if (!source) return requests;
  if (source.rootDeviceType === 'instance-store') {
    const location = source.imageLocation ?? '';
    const sourceBucket = location.split('/')[0] ?? '';
    const hash = createHash('sha256')
      .update(accountId + region)
      .digest('hex')
      .slice(0, 8);
    const target = `amis-for-${accountId}-in-${region}-${hash}`;
    const s3 = { ...base, 's3:ResourceAccount': accountId };
    requests.push(
      { action: 's3:ListAllMyBuckets', resource: '*', context: base },
      ...INSTANCE_STORE_COPY_WRITES.map((action) => ({ action, resource: `arn:aws:s3:::${target}`, context: s3 })),
      { action: 's3:GetBucketAcl', resource: `arn:aws:s3:::${sourceBucket}`, context: s3 },
      { action: 's3:GetObject', resource: `arn:aws:s3:::${location}`, context: s3 },
      { action: 's3:PutObject', resource: `arn:aws:s3:::${target}/*`, context: s3 },
      { action: 's3:PutObjectAcl', resource: `arn:aws:s3:::${target}/*`, context: s3 },
    );
    return requests;
  }
  const sourceKeys = new Set<string>();
  for (const id of snapshotIdsOf(source)) {
    const key = sourceState.region(sourceRegion).snapshots.get(id)?.kmsKeyId;
    if (key) sourceKeys.add(key);
  }
  const encrypted = params.bool('Encrypted') === true || sourceKeys.size > 0;
  const keyUse = (keyArn: string, actions: string[], viaRegion: string, keyState = state) => {
    const keyRegion = keyArn.split(':')[3] ?? region;
    const via = { 'aws:RequestedRegion': keyRegion, 'kms:ViaService': `ec2.${viaRegion}.amazonaws.com` };
    return [
      ...actions.map((action) => ({
        action,
        resource: keyArn,
        context: { ...via, ...aliasContext(keyState, keyArn) },
      })),
      {
        action: 'kms:CreateGrant',
        resource: keyArn,
        context: { ...via, ...aliasContext(keyState, keyArn), 'kms:GrantIsForAWSResource': 'true' },
      },
    ];
  };
  // AWS does not document which region's EC2 endpoint KMS sees when a copy reads a source key in another region:
  // the twin shows the copy's (destination) region, so a role pinned to the source region's endpoint is refused.
  for (const key of sourceKeys) requests.push(...keyUse(key, SOURCE_KEY_ACTIONS, region, sourceState));
  if (encrypted) {
    const ref = params.get('KmsKeyId') ?? 'alias/aws/ebs';
    const destination = state.resolve(region, ref);
    // A key that does not exist is EC2's to report (the copy fails later), not IAM's.
    if (destination)
      requests.push(...keyUse(destination.arn, DESTINATION_KEY_ACTIONS, destination.arn.split(':')[3] ?? region));
  }
  return requests;
}

/** `kms:ResourceAliases`: the aliases of the key a request uses. */
function aliasContext(state: TwinState, keyArn: string): Record<string, string[]> {
  const [, , , region, , resource] = keyArn.split(':');
  if (!region || !resource?.startsWith('key/')) return {};
  const keyId = resource.slice(4);
  const aliases = [...state.region(region).aliases].filter(([, id]) => id === keyId).map(([alias]) => alias);
  return { 'kms:ResourceAliases': aliases };
}

/** KMS, Step Functions, SNS, DynamoDB, Auto Scaling and Recycle Bin calls, made directly by the caller. */
export function serviceRequests(request: TwinRequest, state: TwinState): AuthRequest[] {
  const base = { 'aws:RequestedRegion': request.region };
  const str = (name: string) => {
    const value = request.protocol === 'json' ? request.json[name] : request.params[name];
    return typeof value === 'string' ? value : undefined;
  };
  switch (request.service) {
    case 'kms': {
      const action = `kms:${request.action}`;
      const ref = str('KeyId') ?? str('TargetKeyId');
      const key = ref ? state.resolve(request.region, ref) : undefined;
      if (!key) return [{ action, resource: '*', context: base }];
      // CreateGrant's own condition keys (KMS developer guide: conditions-kms, kms:GranteePrincipal, kms:GrantOperations).
      const grant: Record<string, string | string[]> =
        request.action === 'CreateGrant' && request.protocol === 'json'
          ? {
              ...(str('GranteePrincipal') ? { 'kms:GranteePrincipal': str('GranteePrincipal')! } : {}),
              'kms:GrantOperations': Array.isArray(request.json.Operations)
                ? request.json.Operations.filter((o): o is string => typeof o === 'string')
                : [],
            }
          : {};
      return [{ action, resource: key.arn, context: { ...base, ...aliasContext(state, key.arn), ...grant } }];
    }
    case 'states': {
      const resource = str('stateMachineArn') ?? str('executionArn') ?? '*';
      return [{ action: `states:${request.action}`, resource, context: base }];
    }
    case 'sns':
      return [{ action: `sns:${request.action}`, resource: str('TopicArn') ?? '*', context: base }];
    case 'dynamodb': {
      const table = str('TableName');
      const resource = table ? `arn:aws:dynamodb:${request.region}:${state.accountId}:table/${table}` : '*';
      return [{ action: `dynamodb:${request.action}`, resource, context: base }];
    }
    case 'autoscaling':
      return [{ action: `autoscaling:${request.action}`, resource: '*', context: base }];
    // GetCallerIdentity needs no permission; AssumeRole is authorized on the role (and by its trust, in sts.ts).
    case 'sts':
      return request.action === 'AssumeRole'
        ? [{ action: 'sts:AssumeRole', resource: str('RoleArn') ?? '*', context: base }]
        : [];
    case 'rbin': {
      // REST-JSON: the action is the route (`POST /list-rules`, `GET /rules/<id>`, `POST /rules`).
      const [method, path = ''] = request.action.split(' ');
      const rule = /^\/rules\/([^/]+)$/.exec(path)?.[1];
      const action =
        path === '/list-rules' ? 'ListRules' : rule ? (method === 'GET' ? 'GetRule' : 'UpdateRule') : 'CreateRule';
      return [{ action: `rbin:${action}`, resource: '*', context: base }];
    }
    default:
      return [];
  }
}

/** How each service words a denial. */
export const DENIAL: Record<string, { code: string; status: number }> = {
  ec2: { code: 'UnauthorizedOperation', status: 403 },
  kms: { code: 'AccessDeniedException', status: 400 },
  sts: { code: 'AccessDenied', status: 403 },
  states: { code: 'AccessDeniedException', status: 400 },
  sns: { code: 'AuthorizationError', status: 403 },
  autoscaling: { code: 'AccessDenied', status: 403 },
  s3: { code: 'AccessDenied', status: 403 },
  rbin: { code: 'AccessDeniedException', status: 401 },
  dynamodb: { code: 'AccessDeniedException', status: 400 },
};
