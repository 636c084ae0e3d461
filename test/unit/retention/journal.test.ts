import { describe, expect, it } from 'vitest';
import {
  imageOfJournalKey,
  InvalidJournalError,
  journalKey,
  parseBundleJournal,
  snapshotDeleteOutcome,
} from '../../../lib/domain/journal.ts';
import { amiOfDescription, decideSweep, type SweptSnapshot } from '../../../lib/domain/orphan-sweep.ts';
import type { DeregisterAction, RetentionPlan } from '../../../lib/domain/retention-planner.ts';
import { buildRetentionReport, summarizeReport } from '../../../lib/domain/retention-report.ts';
import { emptyJournalSummary } from '../../../lib/domain/journal.ts';
import { ACCOUNT, NOW, policy } from './fixtures.ts';

const DAY = 86_400_000;

describe('deletion journal: names and trust', () => {
  it('names journal objects after their image, and reads the image back only from such a key', () => {
    expect(journalKey('ami-0123456789abcdef0')).toBe('ami-dr/journal/ami-0123456789abcdef0.json');
    expect(imageOfJournalKey('ami-dr/journal/ami-0123456789abcdef0.json')).toBe('ami-0123456789abcdef0');
    expect(imageOfJournalKey('ami-dr/journal/../web/image.manifest.xml')).toBeUndefined();
    expect(imageOfJournalKey('web/ami-0123456789abcdef0.json')).toBeUndefined();
  });

  it('refuses a journal object that names another bucket, another image, or journal keys', () => {
    const key = journalKey('ami-00000001');
    const good = {
      version: 1,
      imageId: 'ami-00000001',
      bucket: 'b1',
      manifestKey: 'w/i.manifest.xml',
      partKeys: ['w/i.part.00'],
      journaledAt: '',
    };
    expect(parseBundleJournal(JSON.stringify(good), 'b1', key).partKeys).toEqual(['w/i.part.00']);
    for (const bad of [
      { ...good, bucket: 'b2' },
      { ...good, imageId: 'ami-00000002' },
      { ...good, partKeys: ['ami-dr/journal/ami-00000003.json'] },
      { ...good, manifestKey: '' },
    ])
      expect(() => parseBundleJournal(JSON.stringify(bad), 'b1', key)).toThrow(InvalidJournalError);
    expect(() => parseBundleJournal('not json', 'b1', key)).toThrow(InvalidJournalError);
  });

  it('maps DeleteSnapshot answers: in use by another image is kept, not found is done, the rest retried', () => {
    expect(snapshotDeleteOutcome(undefined)).toBe('deleted');
    expect(snapshotDeleteOutcome('InvalidSnapshot.InUse')).toBe('in-use');
    expect(snapshotDeleteOutcome('InvalidSnapshot.NotFound')).toBe('gone');
    expect(snapshotDeleteOutcome('InternalError')).toBe('failed');
  });
});

describe('report: storage DeregisterImage did not confirm deleted', () => {
  const action: DeregisterAction = {
    action: 'deregister',
    rule: 'deregister-after-days',
    imageId: 'ami-1',
    name: 'web-1',
    scope: 'sources',
    detail: 'old',
    rootDeviceType: 'ebs',
    snapshots: [{ snapshotId: 'snap-1', sizeGiB: 75, sharedWithKeptImage: false }],
  };
  const plan: RetentionPlan = {
    region: 'us-east-1',
    accountId: ACCOUNT,
    now: new Date(NOW).toISOString(),
    actions: [action],
    errors: [],
    warnings: [],
    expectedSnapshotGiB: 75,
  };
  const removed = {
    imageId: 'ami-1',
    name: 'web-1',
    rootDeviceType: 'ebs' as const,
    alreadyGone: false,
    snapshots: [{ snapshotId: 'snap-1', returnCode: 'unconfirmed', sizeGiB: 75 }],
  };
  const outcome = {
    deprecated: [],
    removed: [removed],
    errors: [],
    pending: [],
    stoppedEarly: false,
    mutatingCalls: 2,
  };

  it('counts nothing freed, warns, and reports the GiB pending in the journal as left for the next run', () => {
    const journal = emptyJournalSummary();
    journal.open = [
      { kind: 'snapshot', imageId: 'ami-1', snapshotId: 'snap-1', sizeGiB: 75, reason: 'DeleteSnapshot failed' },
    ];
    const report = buildRetentionReport({
      plan,
      policy: policy(),
      dryRun: false,
      imageReferences: 'checked',
      outcome,
      journal,
      startedAt: NOW,
      finishedAt: NOW,
    });
    expect(report.gibFreed).toBe(0);
    expect(report.complete).toBe(false);
    expect(report.counts.journalOpen).toBe(1);
    expect(report.warnings.join('\n')).toMatch(/did not confirm deleting 1 snapshot \(75 GiB/);
    expect(summarizeReport(report)).toMatch(
      /1 removed, 1 left for the next run, 0 GiB freed .*75 GiB pending in the deletion journal/,
    );
  });

  it('counts what the journal deleted later in the same run as freed', () => {
    const journal = { ...emptyJournalSummary(), snapshotsDeleted: 1, snapshotGibFreed: 75 };
    const report = buildRetentionReport({
      plan,
      policy: policy(),
      dryRun: false,
      imageReferences: 'checked',
      outcome,
      journal,
      startedAt: NOW,
      finishedAt: NOW,
    });
    expect(report.gibFreed).toBe(75);
    expect(report.complete).toBe(true);
    expect(summarizeReport(report)).toMatch(/0 left for the next run, 75 GiB freed/);
  });

  it('does not count what the journal deleted as freed where a Recycle Bin rule for snapshots may hold it', () => {
    const journal = { ...emptyJournalSummary(), snapshotsDeleted: 1, snapshotGibFreed: 75 };
    const rule = {
      id: 'rule-1',
      resourceType: 'EBS_SNAPSHOT' as const,
      retentionDays: 7,
      resourceTags: [],
      excludeTags: [],
    };
    const report = buildRetentionReport({
      plan: { ...plan, recycleBinRules: [rule] },
      policy: policy(),
      dryRun: false,
      imageReferences: 'checked',
      outcome,
      journal,
      startedAt: NOW,
      finishedAt: NOW,
    });
    expect(report.gibFreed).toBe(0);
    expect(report.warnings.join('\n')).toMatch(
      /deletion journal deleted 75 GiB of snapshots in a region with a Recycle Bin rule/,
    );
  });
});

describe('orphan sweep rules', () => {
  const snap = (id: string, description: string, extra: Partial<SweptSnapshot> = {}): SweptSnapshot => ({
    snapshotId: id,
    description,
    tags: {},
    startTime: new Date(NOW - 100 * DAY).toISOString(),
    sizeGiB: 10,
    ...extra,
  });
  const created = (ami: string) => `Created by CreateImage(i-0abc) for ${ami} from vol-0def`;

  it('reads the AMI from CreateImage and CopyImage descriptions only', () => {
    expect(amiOfDescription(created('ami-0aa'))).toBe('ami-0aa');
    expect(amiOfDescription('Copied for DestinationAmi ami-0bb from SourceAmi ami-0cc for SourceSnapshot snap-1')).toBe(
      'ami-0bb',
    );
    expect(amiOfDescription('nightly backup of ami-0aa')).toBeUndefined();
  });

  it('takes only old, unshared, non-Backup snapshots of proven-gone AMIs that no image uses', () => {
    const snapshots = [
      snap('snap-orphan', created('ami-0dead')),
      snap('snap-young', created('ami-0dead'), { startTime: new Date(NOW - 2 * DAY).toISOString() }),
      snap('snap-used', created('ami-0dead')),
      snap('snap-shared', created('ami-0dead')),
      snap('snap-backup', created('ami-0dead'), { tags: { 'aws:backup:source-resource': 'x' } }),
      snap('snap-journal', created('ami-0dead'), { tags: { 'ami-dr:journal': 'ami-0dead' } }),
      snap('snap-live', created('ami-0a11')),
      snap('snap-manual', 'my volume'),
    ];
    const { candidates, keptByReason } = decideSweep(snapshots, {
      usedSnapshotIds: new Set(['snap-used']),
      goneImageIds: new Set(['ami-0dead']),
      sharedSnapshotIds: new Set(['snap-shared']),
      now: NOW,
      minAgeDays: 30,
    });
    expect(candidates.map((c) => c.snapshotId)).toEqual(['snap-orphan']);
    expect(keptByReason).toEqual({
      journaled: 1,
      backup: 1,
      'in-use': 1,
      'too-young': 1,
      'no-ami-named': 1,
      'ami-not-proven-gone': 1,
      shared: 1,
    });
  });
});
