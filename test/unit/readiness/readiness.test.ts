import { describe, expect, it } from 'vitest';
import { computeReadiness, planReconciliation, type ReadinessCell } from '../../../lib/domain/readiness.ts';
import { copyTags } from '../../../lib/domain/replication.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { copy, input, NOW, policy, source } from './fixtures.ts';

const cell = (report: ReturnType<typeof computeReadiness>, imageId: string, region: string): ReadinessCell => {
  const found = report.rows.find((r) => r.sourceImageId === imageId)?.cells.find((c) => c.region === region);
  if (!found) throw new Error(`no cell ${imageId} × ${region}`);
  return found;
};

describe('readiness status', () => {
  it('is ready when each DR region holds an available copy that is what the policy requires', () => {
    const src = source('ami-1');
    const report = computeReadiness(
      input({ sources: [src], copies: [copy(src, 'us-west-2'), copy(src, 'eu-west-1')] }),
    );

    expect(report.rows).toHaveLength(1);
    expect(report.rows[0]?.cells.map((c) => [c.region, c.status])).toEqual([
      ['us-west-2', 'ready'],
      ['eu-west-1', 'ready'],
    ]);
    expect(report.rows[0]?.protected).toBe(true);
    expect(report.summary.readyRatio).toBe(1);
    expect(report.summary.imagesNotReady).toBe(0);
    expect(report.summary.oldestUnprotectedAgeSeconds).toBe(0);
  });

  it('a region whose DR key is disabled, pending deletion or missing is failed with that reason and not re-driven; an instance-store source needs no key', () => {
    const src = source('ami-1');
    const store = source('ami-2', { rootDeviceType: 'instance-store' });
    const failed = copy(src, 'eu-west-1', { state: 'failed' });
    const states = { 'us-west-2': 'Disabled', 'eu-west-1': 'PendingDeletion' };
    const report = computeReadiness({ ...input({ sources: [src, store], copies: [failed] }), keyStates: states });

    expect(cell(report, 'ami-1', 'us-west-2')).toMatchObject({
      status: 'failed',
      reason: 'DR key alias/ami-dr is Disabled: copies into us-west-2 fail until it is enabled',
    });
    expect(cell(report, 'ami-1', 'eu-west-1')).toMatchObject({
      status: 'failed',
      reason: 'DR key alias/ami-dr is PendingDeletion: copies into eu-west-1 fail until it is enabled',
    });
    expect(cell(report, 'ami-2', 'us-west-2').status).toBe('missing');
    expect(planReconciliation(report).redrive.map((r) => r.sourceImageId)).toEqual(['ami-2']);

    const enabled = computeReadiness({
      ...input({ sources: [src], copies: [] }),
      keyStates: { 'us-west-2': 'Enabled', 'eu-west-1': 'NotFound' },
    });
    expect(cell(enabled, 'ami-1', 'us-west-2').status).toBe('missing');
    expect(cell(enabled, 'ami-1', 'eu-west-1').reason).toBe('DR key alias/ami-dr does not exist in eu-west-1');
    expect(planReconciliation(enabled).redrive).toEqual([expect.objectContaining({ regions: ['us-west-2'] })]);
  });

  it('a region whose DR account cannot be read is failed with the reason for every source, instance-store too, and not re-driven', () => {
    const src = source('ami-1');
    const store = source('ami-2', { rootDeviceType: 'instance-store' });
    const why =
      'DR account 222222222222 cannot be read: cannot assume arn:aws:iam::222222222222:role/ami-dr-replicator';
    const report = computeReadiness({
      ...input({ sources: [src, store], copies: [copy(src, 'eu-west-1')] }),
      unreachable: { 'us-west-2': why },
    });

    for (const id of ['ami-1', 'ami-2'])
      expect(cell(report, id, 'us-west-2')).toMatchObject({ status: 'failed', reason: why, refused: true });
    expect(cell(report, 'ami-1', 'eu-west-1').status).toBe('ready');
    expect(planReconciliation(report).redrive).toEqual([expect.objectContaining({ regions: ['eu-west-1'] })]);
  });

  it('measures lag from source creation to the replicated-at tag, or to the copy creation without it', () => {
    const src = source('ami-1');
    const untagged = copy(src, 'eu-west-1');
    delete untagged.tags[TAG.replicatedAt];
    const report = computeReadiness(input({ sources: [src], copies: [copy(src, 'us-west-2'), untagged] }));

    expect(cell(report, 'ami-1', 'us-west-2').lagSeconds).toBe(20 * 60);
    expect(cell(report, 'ami-1', 'eu-west-1').lagSeconds).toBe(5 * 60);
    expect(report.summary.maxLagSeconds).toBe(20 * 60);
  });

  it('is in-progress while the copy is pending, with lag growing until now', () => {
    const src = source('ami-1');
    const report = computeReadiness(
      input({ sources: [src], copies: [copy(src, 'us-west-2', { state: 'pending' }), copy(src, 'eu-west-1')] }),
    );

    const c = cell(report, 'ami-1', 'us-west-2');
    expect(c.status).toBe('in-progress');
    expect(c.lagSeconds).toBe((NOW - Date.parse(src.creationDate)) / 1000);
    expect(report.rows[0]?.protected).toBe(false);
    expect(report.summary.oldestUnprotectedAgeSeconds).toBe(2 * 3600);
  });

  it('is in-progress for every region while the source itself is pending', () => {
    const src = source('ami-1', { state: 'pending' });
    const report = computeReadiness(input({ sources: [src], copies: [] }));
    expect(report.rows[0]?.cells.map((c) => c.status)).toEqual(['in-progress', 'in-progress']);
    expect(report.rows[0]?.cells[0]?.reason).toMatch(/source image is still pending/);
  });

  it('is missing when no copy carries the source in its provenance tags', () => {
    const src = source('ami-1');
    const other = source('ami-2');
    const report = computeReadiness(
      input({ sources: [src], copies: [copy(other, 'us-west-2'), copy(src, 'eu-west-1')] }),
    );

    const c = cell(report, 'ami-1', 'us-west-2');
    expect(c.status).toBe('missing');
    expect(c.lagSeconds).toBe(2 * 3600);
    expect(report.summary.counts).toMatchObject({ missing: 1, ready: 1 });
    expect(report.summary.readyRatio).toBe(0.5);
  });

  it('finds copies by provenance from the right source region only', () => {
    const src = source('ami-1');
    const wrongRegion = copy(src, 'us-west-2', {
      tags: { ...copy(src, 'us-west-2').tags, [TAG.sourceRegion]: 'us-east-2' },
    });
    const report = computeReadiness(input({ sources: [src], copies: [wrongRegion, copy(src, 'eu-west-1')] }));
    expect(cell(report, 'ami-1', 'us-west-2').status).toBe('missing');
  });

  it('is failed with the copy state reason', () => {
    const src = source('ami-1');
    const failed = copy(src, 'us-west-2', { state: 'failed', stateReason: 'KMS key alias/ami-dr is disabled' });
    const report = computeReadiness(input({ sources: [src], copies: [failed, copy(src, 'eu-west-1')] }));

    const c = cell(report, 'ami-1', 'us-west-2');
    expect(c.status).toBe('failed');
    expect(c.reason).toBe('copy failed: KMS key alias/ami-dr is disabled');
    expect(c.copyImageId).toBe(failed.imageId);
  });

  it('prefers a usable copy over a failed earlier attempt, and ignores deregistered ones', () => {
    const src = source('ami-1');
    const failed = copy(src, 'us-west-2', { imageId: 'ami-old', state: 'failed', stateReason: 'boom' });
    const retry = copy(src, 'us-west-2', { imageId: 'ami-new', state: 'pending' });
    const gone = copy(src, 'eu-west-1', { state: 'deregistered' });
    const report = computeReadiness(input({ sources: [src], copies: [failed, retry, gone] }));

    expect(cell(report, 'ami-1', 'us-west-2')).toMatchObject({ status: 'in-progress', copyImageId: 'ami-new' });
    expect(cell(report, 'ami-1', 'eu-west-1').status).toBe('missing');
  });

  it('leaves out replicas, out-of-scope images, images outside the source regions, and deregistered sources', () => {
    const keep = source('ami-1');
    const replicaInSource = source('ami-2', { tags: { [TAG.role]: 'replica' } });
    const skipped = source('ami-3', { tags: { 'ami-dr:skip': 'true' } });
    const elsewhere = source('ami-4', { region: 'ap-south-1' });
    const gone = source('ami-5', { state: 'deregistered' });
    const report = computeReadiness(input({ sources: [keep, replicaInSource, skipped, elsewhere, gone], copies: [] }));
    expect(report.rows.map((r) => r.sourceImageId)).toEqual(['ami-1']);
  });

  it('reports a perfect ratio and nothing unprotected when there is nothing in scope', () => {
    const report = computeReadiness(input({ sources: [], copies: [] }));
    expect(report.summary).toMatchObject({
      images: 0,
      cells: 0,
      readyRatio: 1,
      imagesNotReady: 0,
      oldestUnprotectedAgeSeconds: 0,
    });
  });

  it('reports the age of the oldest source that is not ready everywhere', () => {
    const old = source('ami-old', { creationDate: '2026-02-28T12:00:00.000Z' });
    const recent = source('ami-new', { creationDate: '2026-03-01T11:00:00.000Z' });
    const oldest = source('ami-oldest-but-ready', { creationDate: '2026-01-01T00:00:00.000Z' });
    const report = computeReadiness(
      input({
        sources: [old, recent, oldest],
        copies: [
          copy(old, 'us-west-2'),
          copy(recent, 'us-west-2'),
          copy(recent, 'eu-west-1'),
          copy(oldest, 'us-west-2'),
          copy(oldest, 'eu-west-1'),
        ],
      }),
    );
    expect(report.summary.imagesNotReady).toBe(1);
    expect(report.summary.oldestUnprotectedAgeSeconds).toBe(24 * 3600);
  });
});

describe('drift', () => {
  it('names a copy encrypted under another key', () => {
    const src = source('ami-1');
    const wrongKey = copy(src, 'us-west-2', {
      snapshots: [{ snapshotId: 'snap-x', encrypted: true, kmsKeyId: 'arn:aws:kms:us-west-2:000000000000:key/other' }],
    });
    const report = computeReadiness(input({ sources: [src], copies: [wrongKey, copy(src, 'eu-west-1')] }));

    const c = cell(report, 'ami-1', 'us-west-2');
    expect(c.status).toBe('drifted');
    expect(c.drift.map((d) => d.kind)).toEqual(['key']);
    expect(c.reason).toContain('key/other');
  });

  it('names an unencrypted EBS copy, but holds instance-store copies to no key', () => {
    const src = source('ami-1');
    const plain = copy(src, 'us-west-2', { snapshots: [{ snapshotId: 'snap-x', encrypted: false }] });
    const store = copy(src, 'eu-west-1', { rootDeviceType: 'instance-store', snapshots: [] });
    const report = computeReadiness(input({ sources: [src], copies: [plain, store] }));

    expect(cell(report, 'ami-1', 'us-west-2').reason).toBe('not encrypted; expected alias/ami-dr');
    expect(cell(report, 'ami-1', 'eu-west-1').status).toBe('ready');
  });

  it('names tags edited or removed on the copy, and repairs them to the source values', () => {
    const src = source('ami-1');
    const edited = copy(src, 'us-west-2');
    edited.tags.Team = 'someone-else';
    delete edited.tags['dr-copy'];
    const report = computeReadiness(input({ sources: [src], copies: [edited, copy(src, 'eu-west-1')] }));

    const c = cell(report, 'ami-1', 'us-west-2');
    expect(c.status).toBe('drifted');
    expect(c.reason).toBe('tags missing dr-copy; changed Team');
    expect(c.drift).toEqual([
      { kind: 'tags', detail: 'tags missing dr-copy; changed Team', set: { Team: 'core', 'dr-copy': 'true' } },
    ]);
  });

  it('requires no tag replication dropped for the 50-tag limit (the copy also carries replicated-at)', () => {
    const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${String(i).padStart(2, '0')}`, 'v']));
    const src = source('ami-1', { tags: many });
    const p = policy();
    // Exactly what finalize applies: the tag set with replicated-at, limited to 50.
    const applied = copyTags(src, p, '2026-03-01T10:20:00.000Z').tags;
    expect(Object.keys(applied)).toHaveLength(50);
    const copies = (['us-west-2', 'eu-west-1'] as const).map((r) => copy(src, r, { tags: applied }));
    const report = computeReadiness(input({ policy: p, sources: [src], copies }));

    expect(report.rows[0]?.cells.map((c) => [c.status, c.reason])).toEqual([
      ['ready', undefined],
      ['ready', undefined],
    ]);
  });

  it('does not require denied or aws: tags, and accepts tags added to the copy', () => {
    const src = source('ami-1', {
      tags: { Name: 'app', Team: 'core', CostCenter: '42', 'aws:cloudformation:stack-name': 's' },
    });
    const extra = copy(src, 'us-west-2');
    extra.tags['ami-dr:retain'] = 'true';
    const report = computeReadiness(input({ sources: [src], copies: [extra, copy(src, 'eu-west-1')] }));
    expect(report.summary.counts.ready).toBe(2);
  });

  it('names launch permissions missing from the copy and ones beyond the policy', () => {
    const src = source('ami-1');
    const c1 = copy(src, 'us-west-2');
    const c2 = copy(src, 'eu-west-1');
    const orgArn = 'arn:aws:organizations::111111111111:organization/o-abcdefghij';
    const report = computeReadiness(
      input({
        policy: policy({
          replication: {
            tagDenyList: ['CostCenter*'],
            extraTags: { 'dr-copy': 'true' },
            addLaunchPermissions: { organizationArns: [orgArn] },
          },
        }),
        sources: [src],
        copies: [c1, c2],
        permissions: [
          [src, [{ userId: '123456789012' }]],
          [c1, [{ userId: '999999999999' }, { organizationArn: orgArn }]],
          [c2, [{ userId: '123456789012' }, { organizationArn: orgArn }]],
        ],
      }),
    );

    const drifted = cell(report, 'ami-1', 'us-west-2');
    expect(drifted.status).toBe('drifted');
    expect(drifted.drift).toEqual([
      {
        kind: 'launch-permissions',
        detail:
          'launch permissions not shared with account 123456789012; shared with account 999999999999 beyond the policy',
        add: [{ userId: '123456789012' }],
        remove: [{ userId: '999999999999' }],
      },
    ]);
    expect(cell(report, 'ami-1', 'eu-west-1').status).toBe('ready');
  });

  it('does not call permissions drifted when they were not read', () => {
    const src = source('ami-1');
    const c1 = copy(src, 'us-west-2');
    const i = input({
      sources: [src],
      copies: [c1, copy(src, 'eu-west-1')],
      permissions: [[src, [{ userId: '123456789012' }]]],
    });
    (i.launchPermissions as Map<string, unknown>).delete(`us-west-2/${c1.imageId}`);
    expect(cell(computeReadiness(i), 'ami-1', 'us-west-2').status).toBe('ready');
  });

  it('names a deprecation time missing or different from the source, to the minute', () => {
    const src = source('ami-1', { deprecationTime: '2027-01-01T00:00:00.000Z' });
    const none = copy(src, 'us-west-2', { deprecationTime: undefined });
    const sameMinute = copy(src, 'eu-west-1', { deprecationTime: '2027-01-01T00:00:10Z' });
    const report = computeReadiness(input({ sources: [src], copies: [none, sameMinute] }));

    expect(cell(report, 'ami-1', 'us-west-2')).toMatchObject({
      status: 'drifted',
      drift: [{ kind: 'deprecation', deprecateAt: '2027-01-01T00:00:00.000Z' }],
    });
    expect(cell(report, 'ami-1', 'us-west-2').reason).toMatch(/deprecation time missing/);
    expect(cell(report, 'ami-1', 'eu-west-1').status).toBe('ready');

    const later = copy(src, 'eu-west-1', { deprecationTime: '2027-06-01T00:00:00.000Z' });
    expect(
      cell(computeReadiness(input({ sources: [src], copies: [none, later] })), 'ami-1', 'eu-west-1').reason,
    ).toMatch(/deprecation time 2027-06-01/);
  });

  it('accepts a deprecation time on a copy whose source has none (retention deprecates copies)', () => {
    const src = source('ami-1');
    const report = computeReadiness(
      input({
        sources: [src],
        copies: [copy(src, 'us-west-2', { deprecationTime: '2026-05-01T00:00:00Z' }), copy(src, 'eu-west-1')],
      }),
    );
    expect(report.summary.counts.ready).toBe(2);
  });

  it('lists every kind of drift on one copy', () => {
    const src = source('ami-1', { deprecationTime: '2027-01-01T00:00:00.000Z' });
    const bad = copy(src, 'us-west-2', {
      deprecationTime: undefined,
      snapshots: [{ snapshotId: 's', encrypted: true, kmsKeyId: 'other' }],
    });
    bad.tags.Team = 'x';
    const report = computeReadiness(
      input({
        sources: [src],
        copies: [bad, copy(src, 'eu-west-1')],
        permissions: [[bad, [{ userId: '999999999999' }]]],
      }),
    );
    expect(cell(report, 'ami-1', 'us-west-2').drift.map((d) => d.kind)).toEqual([
      'key',
      'tags',
      'launch-permissions',
      'deprecation',
    ]);
  });
});

describe('reconciliation plan', () => {
  it('re-drives missing and failed regions once per source, repairs drift, and leaves key drift to a person', () => {
    const a = source('ami-a');
    const b = source('ami-b', { deprecationTime: '2027-01-01T00:00:00.000Z' });
    const c = source('ami-c');
    const bTags = copy(b, 'us-west-2', { deprecationTime: undefined });
    bTags.tags.Team = 'x';
    const report = computeReadiness(
      input({
        sources: [a, b, c],
        copies: [
          copy(a, 'us-west-2', { state: 'failed', stateReason: 'key disabled' }),
          bTags,
          copy(b, 'eu-west-1', { snapshots: [{ snapshotId: 's', encrypted: true, kmsKeyId: 'other' }] }),
          copy(c, 'us-west-2', { state: 'pending' }),
          copy(c, 'eu-west-1'),
        ],
        permissions: [[bTags, [{ userId: '999999999999' }]]],
      }),
    );
    const plan = planReconciliation(report);

    expect(plan.redrive).toEqual([
      {
        sourceRegion: 'us-east-1',
        sourceImageId: 'ami-a',
        regions: ['us-west-2', 'eu-west-1'],
        reason: expect.stringContaining('us-west-2: failed (copy failed: key disabled)'),
      },
    ]);
    expect(plan.repair).toEqual([
      {
        region: 'us-west-2',
        copyImageId: bTags.imageId,
        sourceImageId: 'ami-b',
        sourceRegion: 'us-east-1',
        tags: { Team: 'core' },
        launchPermissions: { add: [], remove: [{ userId: '999999999999' }] },
        deprecateAt: '2027-01-01T00:00:00.000Z',
        reason: expect.stringContaining('tags changed Team'),
      },
    ]);
    expect(plan.manual).toEqual([
      expect.objectContaining({
        region: 'eu-west-1',
        sourceImageId: 'ami-b',
        reason: expect.stringMatching(/needs a new copy/),
      }),
    ]);
  });

  it('does not re-drive a public EBS source that replication refuses; the cell says why, instance-store ones are re-driven', () => {
    const open = source('ami-public', { public: true });
    const openInstanceStore = source('ami-public-is', { public: true, rootDeviceType: 'instance-store' });
    const report = computeReadiness(input({ sources: [open, openInstanceStore], copies: [] }));

    expect(report.rows.find((r) => r.sourceImageId === 'ami-public')?.cells.map((c) => [c.status, c.reason])).toEqual([
      ['failed', expect.stringMatching(/^source is public: its copy would be encrypted/)],
      ['failed', expect.stringMatching(/^source is public: its copy would be encrypted/)],
    ]);
    expect(cell(report, 'ami-public-is', 'us-west-2').status).toBe('missing');
    expect(planReconciliation(report).redrive.map((r) => r.sourceImageId)).toEqual(['ami-public-is']);
  });

  it('re-drives a public EBS source when launch permissions are not copied: its copy stays private', () => {
    const open = source('ami-public', { public: true });
    const report = computeReadiness(
      input({ policy: policy({ replication: { copyLaunchPermissions: false } }), sources: [open], copies: [] }),
    );
    expect(cell(report, 'ami-public', 'us-west-2')).toMatchObject({ status: 'missing' });
    expect(planReconciliation(report).redrive.map((r) => r.sourceImageId)).toEqual(['ami-public']);
  });

  it('is empty when everything is ready or in progress', () => {
    const a = source('ami-a');
    const report = computeReadiness(
      input({ sources: [a], copies: [copy(a, 'us-west-2'), copy(a, 'eu-west-1', { state: 'pending' })] }),
    );
    expect(planReconciliation(report)).toEqual({ redrive: [], repair: [], manual: [] });
  });
});
