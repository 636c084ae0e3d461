import type { Ec2Action, Ec2Context } from './ec2-context.ts';
import { checkId } from './ec2-errors.ts';
import { snapshotFilter } from './ec2-filters.ts';
import { pageSize } from './ec2-pages.ts';
import type { Ec2Params } from './ec2-params.ts';
import { tagSet, type XmlElements } from './ec2-xml.ts';
import { TwinServiceError } from './http.ts';
import type { CreateVolumePermissionEntry, TwinSnapshot } from './state.ts';

/** EBS snapshots: describe, delete, and who may create volumes from them. */

const ACCOUNT_ID = /^\d{12}$/;

function restorable(ctx: Ec2Context, snapshot: TwinSnapshot): boolean {
  return (
    snapshot.ownerId === ctx.accountId ||
    snapshot.createVolumePermissions.some((p) => p.group === 'all' || p.userId === ctx.accountId)
  );
}

function visibleSnapshot(ctx: Ec2Context, snapshotId: string): TwinSnapshot {
  checkId('snap', snapshotId);
  const snapshot = ctx.state.region(ctx.region).snapshots.get(snapshotId);
  if (!snapshot || !restorable(ctx, snapshot))
    throw new TwinServiceError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
  return snapshot;
}

function ownedSnapshot(ctx: Ec2Context, snapshotId: string): TwinSnapshot {
  const snapshot = visibleSnapshot(ctx, snapshotId);
  if (snapshot.ownerId !== ctx.accountId)
    throw new TwinServiceError(
      'UnauthorizedOperation',
      `You are not authorized to perform this operation on ${snapshotId}.`,
    );
  return snapshot;
}

function snapshotXml(snapshot: TwinSnapshot): XmlElements {
  return {
    snapshotId: snapshot.snapshotId,
    volumeId: snapshot.volumeId,
    status: snapshot.state,
    statusMessage: snapshot.stateMessage,
    startTime: snapshot.startTime,
    progress: snapshot.progress,
    ownerId: snapshot.ownerId,
    volumeSize: snapshot.volumeSize,
    description: snapshot.description,
    encrypted: snapshot.encrypted,
    kmsKeyId: snapshot.kmsKeyId,
    ownerAlias: snapshot.ownerAlias,
    tagSet: tagSet(snapshot.tags),
    storageTier: 'standard',
    completionDurationMinutes: snapshot.completionDurationMinutes,
    completionTime: snapshot.completionTime,
    transferType: snapshot.completionDurationMinutes === undefined ? 'standard' : 'time-based',
  };
}

export const describeSnapshots: Ec2Action = (ctx) => {
  const { params } = ctx;
  const snapshotIds = params.list('SnapshotId');
  const owners = params.list('Owner');
  const restorableBy = params.list('RestorableBy');
  const maxResults = pageSize(params.int('MaxResults'), 5, 1000);
  if (maxResults !== undefined && snapshotIds.length > 0) {
    throw new TwinServiceError(
      'InvalidParameterCombination',
      'The parameter snapshotSet cannot be used with the parameter maxResults',
    );
  }
  const matches = snapshotFilter(params.filters());
  const snapshots = ctx.state.region(ctx.region).snapshots;
  const ownerMatches = (s: TwinSnapshot) =>
    owners.length === 0 ||
    owners.some((o) =>
      o === 'self' ? s.ownerId === ctx.accountId : o === 'amazon' ? s.ownerAlias === 'amazon' : s.ownerId === o,
    );
  const restorableMatches = (s: TwinSnapshot) =>
    restorableBy.length === 0 ||
    restorableBy.some((who) =>
      who === 'all'
        ? s.createVolumePermissions.some((p) => p.group === 'all')
        : restorable({ ...ctx, accountId: who === 'self' ? ctx.accountId : who }, s),
    );
  const shown = (s: TwinSnapshot) => restorable(ctx, s) && ownerMatches(s) && restorableMatches(s) && matches(s);

  if (snapshotIds.length > 0) {
    const found = snapshotIds.map((id) => visibleSnapshot(ctx, id));
    return { snapshotSet: [...new Set(found)].filter(shown).map(snapshotXml) };
  }
  const page = ctx.cursors.page(
    params.get('NextToken'),
    maxResults,
    () => {
      const ids: string[] = [];
      for (const snapshot of snapshots.values()) if (shown(snapshot)) ids.push(snapshot.snapshotId);
      return ids;
    },
    (id) => snapshots.get(id),
  );
  return { snapshotSet: page.items.map(snapshotXml), nextToken: page.nextToken };
};

export const deleteSnapshot: Ec2Action = (ctx) => {
  const snapshot = ownedSnapshot(ctx, ctx.params.required('SnapshotId'));
  const users = ctx.state.imagesUsingSnapshot(ctx.region, snapshot.snapshotId);
  if (users.length > 0) {
    throw new TwinServiceError(
      'InvalidSnapshot.InUse',
      `The snapshot ${snapshot.snapshotId} is currently in use by ${users[0]}`,
    );
  }
  ctx.state.region(ctx.region).snapshots.delete(snapshot.snapshotId);
  return { return: true };
};

export const describeSnapshotAttribute: Ec2Action = (ctx) => {
  const attribute = ctx.params.required('Attribute');
  const snapshot = ownedSnapshot(ctx, ctx.params.required('SnapshotId'));
  if (attribute === 'createVolumePermission') {
    return {
      snapshotId: snapshot.snapshotId,
      createVolumePermission: snapshot.createVolumePermissions.map((p) => ({ userId: p.userId, group: p.group })),
    };
  }
  if (attribute === 'productCodes') return { snapshotId: snapshot.snapshotId, productCodes: [] };
  throw new TwinServiceError(
    'InvalidParameterValue',
    `Value (${attribute}) for parameter attribute is invalid. Unknown attribute.`,
  );
};

export const modifySnapshotAttribute: Ec2Action = (ctx) => {
  const { params } = ctx;
  const snapshot = ownedSnapshot(ctx, params.required('SnapshotId'));
  const attribute = params.get('Attribute') ?? 'createVolumePermission';
  if (attribute !== 'createVolumePermission') {
    throw new TwinServiceError(
      'InvalidParameterValue',
      `Value (${attribute}) for parameter attribute is invalid. Only createVolumePermission can be modified.`,
    );
  }
  const { add, remove } = volumePermissionChanges(params);
  for (const entry of add) {
    if (entry.group === 'all' && snapshot.encrypted) {
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Encrypted snapshots cannot be made public: ${snapshot.snapshotId}.`,
      );
    }
    if (
      entry.userId !== undefined &&
      snapshot.encrypted &&
      snapshot.kmsKeyId === ctx.state.resolve(ctx.region, 'alias/aws/ebs')?.arn
    ) {
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Snapshots encrypted with the AWS managed key for EBS cannot be shared: ${snapshot.snapshotId}.`,
      );
    }
  }
  const key = (p: CreateVolumePermissionEntry) => `${p.userId ?? ''}|${p.group ?? ''}`;
  const removing = new Set(remove.map(key));
  const kept = snapshot.createVolumePermissions.filter((p) => !removing.has(key(p)));
  const present = new Set(kept.map(key));
  for (const entry of add) {
    if (present.has(key(entry))) continue;
    kept.push(entry);
    present.add(key(entry));
  }
  snapshot.createVolumePermissions = kept;
  return {};
};

function volumePermissionChanges(params: Ec2Params): {
  add: CreateVolumePermissionEntry[];
  remove: CreateVolumePermissionEntry[];
} {
  const read = (entry: Ec2Params): CreateVolumePermissionEntry =>
    check({ userId: entry.get('UserId'), group: entry.get('Group') as 'all' | undefined });
  const add = params.structs('CreateVolumePermission.Add').map(read);
  const remove = params.structs('CreateVolumePermission.Remove').map(read);
  const operation = params.get('OperationType');
  if (operation === 'add' || operation === 'remove') {
    const entries = [
      ...params.list('UserId').map((userId) => ({ userId })),
      ...params.list('UserGroup').map((group) => ({ group: group as 'all' })),
    ].map(check);
    (operation === 'add' ? add : remove).push(...entries);
  }
  if (add.length === 0 && remove.length === 0)
    throw new TwinServiceError('MissingParameter', 'No createVolumePermission change was specified.');
  return { add, remove };
}

function check(entry: CreateVolumePermissionEntry): CreateVolumePermissionEntry {
  if (entry.userId !== undefined && entry.group === undefined && ACCOUNT_ID.test(entry.userId))
    return { userId: entry.userId };
  if (entry.group === 'all' && entry.userId === undefined) return { group: 'all' };
  throw new TwinServiceError('InvalidParameterValue', `Invalid createVolumePermission item: ${JSON.stringify(entry)}`);
}
