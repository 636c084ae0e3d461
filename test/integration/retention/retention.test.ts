import { DeleteTagsCommand, DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import type { KeepAction } from '../../../lib/domain/retention-planner.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { seedBundle } from '../../../local/twin/s3.ts';
import { daysAgo, REGION, retentionHarness, testPolicy, type RetentionHarness } from './helpers.ts';
import { ec2Client, s3Client } from '../../../lib/aws/clients.ts';

let h: RetentionHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const keptOf = (plan: { actions: { imageId: string; action: string }[] }, imageId: string) =>
  plan.actions.find((a) => a.imageId === imageId) as KeepAction | undefined;
const ids = async (harness: RetentionHarness) => (await harness.images()).map((i) => i.ImageId).sort();

describe('retention on the twin: what must survive', () => {
  it("keeps an image referenced only by a launch template's $Latest version, and removes an unreferenced sibling", async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    const current = seed.image(REGION, { name: 'web-3.0', creationDate: daysAgo(2) });
    const latestOnly = seed.image(REGION, { name: 'web-2.0', creationDate: daysAgo(150) });
    const unused = seed.image(REGION, { name: 'web-1.0', creationDate: daysAgo(200) });
    const template = seed.launchTemplate(REGION, {
      name: 'web',
      versions: [{ imageId: current }, { imageId: latestOnly }],
      defaultVersion: 1,
    });

    const { plan, report } = await h.run();

    const kept = keptOf(plan, latestOnly);
    expect(kept).toMatchObject({ action: 'keep', reason: 'referenced' });
    // Found by the launch template scan itself (DescribeImageReferences agrees, as a second witness).
    expect(kept?.references).toContainEqual({ kind: 'launch-template', id: `${template}:$Latest(2)` });
    expect(report.removed.map((r) => r.imageId)).toEqual([unused]);
    expect(await ids(h)).toEqual([current, latestOnly].sort());
  });

  it("keeps an image referenced by an ASG's mixed-instances policy (an override's launch template version)", async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    const current = seed.image(REGION, { name: 'api-3.0', creationDate: daysAgo(2) });
    const viaOverride = seed.image(REGION, { name: 'api-2.0', creationDate: daysAgo(150) });
    const unused = seed.image(REGION, { name: 'api-1.0', creationDate: daysAgo(200) });
    // The override names version 1 of "arm", which is neither $Default nor $Latest any more... within 12 versions.
    const arm = seed.launchTemplate(REGION, {
      name: 'arm',
      versions: [{ imageId: viaOverride }, ...Array.from({ length: 11 }, () => ({ imageId: current }))],
      defaultVersion: 12,
    });
    const main = seed.launchTemplate(REGION, { name: 'main', versions: [{ imageId: current }] });
    seed.autoScalingGroup(REGION, {
      name: 'api-asg',
      mixedInstancesPolicy: {
        launchTemplate: {
          launchTemplateSpecification: { launchTemplateId: main, version: '$Latest' },
          overrides: [
            { instanceType: 'm7g.large', launchTemplateSpecification: { launchTemplateName: 'arm', version: '1' } },
          ],
        },
      },
    });

    const { plan, report } = await h.run();

    const kept = keptOf(plan, viaOverride);
    expect(kept).toMatchObject({ action: 'keep', reason: 'referenced' });
    expect(kept?.references).toContainEqual({ kind: 'auto-scaling-group', id: `api-asg (${arm}:1)` });
    expect(report.removed.map((r) => r.imageId)).toEqual([unused]);
  });

  describe('launch template versions a fleet names', () => {
    /**
     * An aged image only version 1 of "batch" launches: not $Default, not $Latest, and more than 10 versions
     * back, so DescribeImageReferences does not see it either; only the fleet that names it does.
     */
    const seedBatch = (harness: RetentionHarness) => {
      const { seed } = harness.twin;
      const current = seed.image(REGION, { name: 'batch-3.0', creationDate: daysAgo(2) });
      const fleetOnly = seed.image(REGION, { name: 'batch-2.0', creationDate: daysAgo(150) });
      const unused = seed.image(REGION, { name: 'batch-1.0', creationDate: daysAgo(200) });
      const template = seed.launchTemplate(REGION, {
        name: 'batch',
        versions: [{ imageId: fleetOnly }, ...Array.from({ length: 11 }, () => ({ imageId: current }))],
        defaultVersion: 12,
      });
      return { current, fleetOnly, unused, template };
    };

    it("keeps an image only an EC2 Fleet's launch template version launches, and removes it once the fleet is deleted", async () => {
      h = await retentionHarness();
      const { current, fleetOnly, unused, template } = seedBatch(h);
      const fleet = h.twin.seed.fleet(REGION, { launchTemplateId: template, version: '1' });

      const first = await h.run();

      const kept = keptOf(first.plan, fleetOnly);
      expect(kept).toMatchObject({ action: 'keep', reason: 'referenced' });
      expect(kept?.references).toEqual([
        { kind: 'launch-template', id: `${template}:1` },
        { kind: 'fleet', id: `${fleet} (${template}:1)` },
      ]);
      expect(kept?.detail).toContain(`fleet ${fleet}`);
      expect(first.report.removed.map((r) => r.imageId)).toEqual([unused]);
      expect(await ids(h)).toEqual([current, fleetOnly].sort());

      const record = h.twin.state.region(REGION).fleets.get(fleet);
      if (!record) throw new Error('seeded fleet missing');
      record.state = 'deleted';
      const second = await h.run();

      expect(second.report.removed.map((r) => r.imageId)).toEqual([fleetOnly]);
      expect(await ids(h)).toEqual([current]);
    });

    it("keeps an image only a Spot Fleet request's launch template version launches, and removes it once the request is cancelled", async () => {
      h = await retentionHarness();
      const { current, fleetOnly, unused, template } = seedBatch(h);
      // By name, as a request made from the console names it.
      const request = h.twin.seed.spotFleetRequest(REGION, {
        launchTemplateName: 'batch',
        version: '1',
        state: 'cancelled_running',
      });

      const first = await h.run();

      const kept = keptOf(first.plan, fleetOnly);
      expect(kept).toMatchObject({ action: 'keep', reason: 'referenced' });
      expect(kept?.references).toEqual([
        { kind: 'launch-template', id: `${template}:1` },
        { kind: 'spot-fleet', id: `${request} (${template}:1)` },
      ]);
      expect(kept?.detail).toContain(`spot fleet ${request}`);
      expect(first.report.removed.map((r) => r.imageId)).toEqual([unused]);

      const record = h.twin.state.region(REGION).spotFleetRequests.get(request);
      if (!record) throw new Error('seeded spot fleet request missing');
      record.state = 'cancelled';
      const second = await h.run();

      expect(second.report.removed.map((r) => r.imageId)).toEqual([fleetOnly]);
      expect(await ids(h)).toEqual([current]);
    });
  });

  it('keeps a snapshot two images share until both are gone', async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    const shared = seed.snapshot(REGION, { sizeGiB: 30 });
    seed.image(REGION, { name: 'db-9.0', creationDate: daysAgo(1) });
    const first = seed.image(REGION, { name: 'db-1.0', creationDate: daysAgo(200), snapshotIds: [shared] });
    const second = seed.image(REGION, {
      name: 'db-2.0',
      creationDate: daysAgo(190),
      snapshotIds: [shared],
      tags: { [TAG.retain]: 'true' },
    });

    const run1 = await h.run();
    expect(run1.report.removed).toEqual([
      expect.objectContaining({
        imageId: first,
        snapshots: [{ snapshotId: shared, returnCode: 'skipped', sizeGiB: 30 }],
      }),
    ]);
    expect(run1.report.errors).toEqual([]);
    expect(run1.report.gibFreed).toBe(0);
    expect(await h.snapshotIds()).toContain(shared);

    await ec2Client(h.clients, REGION).send(
      new DeleteTagsCommand({ Resources: [second], Tags: [{ Key: TAG.retain }] }),
    );
    const run2 = await h.run();
    expect(run2.report.removed).toEqual([
      expect.objectContaining({
        imageId: second,
        snapshots: [{ snapshotId: shared, returnCode: 'success', sizeGiB: 30 }],
      }),
    ]);
    expect(run2.report.gibFreed).toBe(30);
    expect(run2.report.estimatedMonthlySaving).toBe(1.5);
    expect(await h.snapshotIds()).not.toContain(shared);
  });

  it("removes an instance-store image's manifest and every part, and nothing else in the bucket", async () => {
    h = await retentionHarness({}, testPolicy({ bundleBuckets: ['ami-bundles'] }));
    const s3 = s3Client(h.clients, REGION);
    const old = await seedBundle(s3, 'ami-bundles', 'web/v1', 3);
    const current = await seedBundle(s3, 'ami-bundles', 'web/v2', 2);
    await s3.send(
      new PutObjectCommand({ Bucket: 'ami-bundles', Key: 'web/v1/README.txt', Body: 'not part of the bundle' }),
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: 'ami-bundles',
        Key: 'web/v1/image.part.03',
        Body: 'a fourth part the manifest does not list',
      }),
    );
    const { seed } = h.twin;
    const oldImage = seed.image(REGION, {
      name: 'web-1',
      rootDeviceType: 'instance-store',
      imageLocation: old.imageLocation,
      creationDate: daysAgo(200),
    });
    seed.image(REGION, {
      name: 'web-2',
      rootDeviceType: 'instance-store',
      imageLocation: current.imageLocation,
      creationDate: daysAgo(1),
    });
    const before = await h.objects('ami-bundles');

    const { report } = await h.run();

    expect(report.errors).toEqual([]);
    const removed = report.removed.find((r) => r.imageId === oldImage);
    expect(removed?.bundle?.deletedKeys.sort()).toEqual([...old.partKeys, old.manifestKey].sort());
    expect(report.counts.bundlesDeleted).toBe(1);
    expect(await h.objects('ami-bundles')).toEqual(
      before.filter((k) => ![...old.partKeys, old.manifestKey].includes(k)),
    );
    expect(await h.objects('ami-bundles')).toEqual(
      expect.arrayContaining(['web/v1/README.txt', 'web/v1/image.part.03', ...current.partKeys, current.manifestKey]),
    );
  });

  it('keeps an instance-store image whose bundle lies in a bucket the policy does not name, bundle untouched', async () => {
    h = await retentionHarness({}, testPolicy({ bundleBuckets: ['ami-bundles'] }));
    const s3 = s3Client(h.clients, REGION);
    const elsewhere = await seedBundle(s3, 'team-bundles', 'web/v1', 2);
    const old = h.twin.seed.image(REGION, {
      name: 'web-1',
      rootDeviceType: 'instance-store',
      imageLocation: elsewhere.imageLocation,
      creationDate: daysAgo(200),
    });
    h.twin.seed.image(REGION, { name: 'web-2', creationDate: daysAgo(1) });
    const before = await h.objects('team-bundles');

    const { report } = await h.run();

    expect(report.kept).toContainEqual(
      expect.objectContaining({
        imageId: old,
        reason: 'bundle-bucket-not-allowed',
        detail: 'bundle bucket not allowed: team-bundles is not in retention.bundleBuckets',
      }),
    );
    expect(report.removed).toEqual([]);
    expect((await h.images()).map((i) => i.ImageId)).toContain(old);
    expect(await h.objects('team-bundles')).toEqual(before);
  });

  it('keeps deregistration-protected images and says so in the report', async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    seed.image(REGION, { name: 'web-9', creationDate: daysAgo(1) });
    const guarded = seed.image(REGION, { name: 'web-1', creationDate: daysAgo(300), deregistrationProtection: true });
    const cooled = seed.image(REGION, {
      name: 'web-2',
      creationDate: daysAgo(300),
      deregistrationProtection: 'with-cooldown',
    });

    const { report } = await h.run();

    expect(report.kept).toEqual(
      expect.arrayContaining([
        {
          imageId: guarded,
          name: 'web-1',
          rule: 'deregistration-protected',
          reason: 'deregistration-protected',
          detail: 'deregistration protection is on',
        },
        {
          imageId: cooled,
          name: 'web-2',
          rule: 'deregistration-protected',
          reason: 'deregistration-protected',
          detail: 'deregistration protection is on',
        },
      ]),
    );
    expect(report.keptByReason['deregistration-protected']).toBe(2);
    expect(report.errors).toEqual([]);
    expect(await ids(h)).toEqual(expect.arrayContaining([guarded, cooled]));
  });

  it('keeps images made by AWS Backup without calling EC2 on them', async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    seed.image(REGION, { name: 'web-9', creationDate: daysAgo(1) });
    const backup = seed.image(REGION, {
      name: 'web-1',
      creationDate: daysAgo(300),
      imageOwnerAlias: 'aws-backup-vault',
    });
    const { report } = await h.run();
    expect(report.kept).toContainEqual(expect.objectContaining({ imageId: backup, reason: 'backup-owned' }));
    expect(report.errors).toEqual([]);
  });

  it('a malformed manifest or a missing bucket: a clear error for that image, nothing of it touched, the rest done', async () => {
    h = await retentionHarness({}, testPolicy({ bundleBuckets: ['broken-bundles', 'no-such-bucket'] }));
    const s3 = s3Client(h.clients, REGION);
    await s3.send(new CreateBucketCommand({ Bucket: 'broken-bundles' }));
    await s3.send(
      new PutObjectCommand({
        Bucket: 'broken-bundles',
        Key: 'app/image.manifest.xml',
        Body: '<manifest><image><parts count="2">',
      }),
    );
    await s3.send(new PutObjectCommand({ Bucket: 'broken-bundles', Key: 'app/image.part.00', Body: 'x' }));
    const { seed } = h.twin;
    seed.image(REGION, { name: 'keep-9', creationDate: daysAgo(1) });
    const malformed = seed.image(REGION, {
      name: 'app-1',
      rootDeviceType: 'instance-store',
      imageLocation: 'broken-bundles/app/image.manifest.xml',
      creationDate: daysAgo(300),
    });
    const noBucket = seed.image(REGION, {
      name: 'app-2',
      rootDeviceType: 'instance-store',
      imageLocation: 'no-such-bucket/app/image.manifest.xml',
      creationDate: daysAgo(300),
    });
    seed.image(REGION, { name: 'app-9', creationDate: daysAgo(1) });
    const ebs = seed.image(REGION, { name: 'keep-1', creationDate: daysAgo(300) });

    const { report } = await h.run();

    expect(report.errors).toEqual(
      expect.arrayContaining([
        {
          step: 'bundle',
          imageId: malformed,
          code: 'InvalidManifestError',
          message: expect.stringMatching(/manifest s3:\/\/broken-bundles\/app\/image.manifest.xml is not valid XML/),
        },
        {
          step: 'bundle',
          imageId: noBucket,
          code: 'BundleNotFoundError',
          message: 'bucket no-such-bucket of bundle s3://no-such-bucket/app/image.manifest.xml does not exist',
        },
      ]),
    );
    expect(report.errors).toHaveLength(2);
    expect(report.complete).toBe(false);
    expect(report.removed.map((r) => r.imageId)).toEqual([ebs]);
    expect(await ids(h)).toEqual(expect.arrayContaining([malformed, noBucket]));
    expect(await h.objects('broken-bundles')).toEqual(['app/image.manifest.xml', 'app/image.part.00']);
  });

  it('dry-run: the same plan, and not one image or snapshot changed', async () => {
    h = await retentionHarness();
    const { seed } = h.twin;
    seed.image(REGION, { name: 'web-9', creationDate: daysAgo(1) });
    seed.image(REGION, { name: 'web-2', creationDate: daysAgo(45) });
    seed.image(REGION, { name: 'web-1', creationDate: daysAgo(300) });
    const before = await ec2Client(h.clients, REGION).send(new DescribeImagesCommand({ Owners: ['self'] }));
    const snapshots = await h.snapshotIds();
    const { report } = await h.run({ dryRun: true });
    expect(report.planned.deregister).toHaveLength(1);
    expect(report.planned.deprecate).toHaveLength(1);
    expect(report.gibFreed).toBe(8);
    const after = await ec2Client(h.clients, REGION).send(new DescribeImagesCommand({ Owners: ['self'] }));
    expect(after.Images).toEqual(before.Images);
    expect(await h.snapshotIds()).toEqual(snapshots);
  });

  it("writes the run report to the policy's report bucket, and reports (not hides) a failed write", async () => {
    h = await retentionHarness({}, testPolicy({ reportBucket: 'ami-dr-reports', reportPrefix: 'runs/' }));
    await s3Client(h.clients, REGION).send(new CreateBucketCommand({ Bucket: 'ami-dr-reports' }));
    h.twin.seed.image(REGION, { name: 'web-9', creationDate: daysAgo(1) });
    const old = h.twin.seed.image(REGION, { name: 'web-1', creationDate: daysAgo(300) });
    const { report, reportLocation } = await h.run();
    expect(reportLocation).toMatch(
      /^s3:\/\/ami-dr-reports\/runs\/retention\/us-east-1\/2026-06-01T12-00-00-000Z\.json$/,
    );
    const key = reportLocation!.slice('s3://ami-dr-reports/'.length);
    const stored = await s3Client(h.clients, REGION).send(new GetObjectCommand({ Bucket: 'ami-dr-reports', Key: key }));
    const written = JSON.parse((await stored.Body?.transformToString()) ?? '{}') as typeof report;
    expect(written.removed.map((r) => r.imageId)).toEqual([old]);
    expect(written.counts).toEqual(report.counts);
    await h.stop();

    h = await retentionHarness({}, testPolicy({ reportBucket: 'no-such-reports' }));
    const failed = await h.run();
    expect(failed.reportLocation).toBeUndefined();
    expect(failed.report.errors).toEqual([expect.objectContaining({ step: 'report', code: 'NoSuchBucket' })]);
  });
});
