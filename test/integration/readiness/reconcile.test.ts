import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  ModifyImageAttributeCommand,
} from '@aws-sdk/client-ec2';
import { EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterEach, describe, expect, it } from 'vitest';
import { createClients, ec2Client } from '../../../lib/aws/clients.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';
import {
  copiesOf,
  DR,
  harness,
  launchPermissions,
  refusing,
  share,
  snapshotIdsOf,
  snapshots,
  SOURCE,
  START,
  summaries,
  tagsOf,
  testPolicy,
  type Harness,
} from '../replication/helpers.ts';

const policy = testPolicy();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const cellsOf = (run: Awaited<ReturnType<typeof runReadiness>>, imageId: string) =>
  Object.fromEntries(
    (run.report.rows.find((r) => r.sourceImageId === imageId)?.cells ?? []).map((c) => [c.region, c.status]),
  );

function readiness(rt: LocalRuntime, reconcile = false) {
  return runReadiness({
    clients: rt.clients,
    policy,
    now: rt.twin.clock.now(),
    reconcile,
    stateMachineArnFor: (r) => rt.stateMachineArn(r),
  });
}

describe('reconciliation on the twin', () => {
  it('an image whose events were lost is missing, then re-driven once, then ready with one copy per region', async () => {
    // Prepare: the image is made while nothing listens to the bus, so its CreateImage and state-change events are lost.
    const clock = new ManualClock(START);
    const twin: Twin = await startTwin({ clock });
    cleanups.push(() => twin.stop());
    for (const region of DR) twin.seed.key(region, { alias: 'ami-dr' });
    const base = twin.seed.image(SOURCE, { name: 'base' });
    const instanceId = twin.seed.instance(SOURCE, { imageId: base });
    const builder = createClients({
      endpoint: twin.endpoint,
      credentials: { accessKeyId: 'BUILDER', secretAccessKey: 'x' },
    });
    const { createImage } = await import('../../../lib/aws/create-image.ts');
    const imageId = await createImage(ec2Client(builder, SOURCE), {
      instanceId,
      name: 'app-1.0',
      tags: { Team: 'core' },
    });
    clock.advance(60_000);
    await twin.settle();
    const rt = await startLocalRuntime({ policy, twin });
    cleanups.push(() => rt.stop());
    const h = {
      rt,
      clock,
      ec2: (region: string) =>
        new EC2Client({
          region,
          endpoint: twin.endpoint,
          credentials: { accessKeyId: 'BUILDER', secretAccessKey: 'x' },
        }),
      keys: {},
    } as Harness;

    // Act + assess: missing everywhere, nothing ran.
    const before = await readiness(rt);
    expect(cellsOf(before, imageId)).toEqual({ 'us-west-2': 'missing', 'eu-west-1': 'missing' });
    expect(rt.executions()).toHaveLength(0);

    // Two readiness runs see the gap before anything is copied: the second joins the first's execution.
    const first = await readiness(rt, true);
    const second = await readiness(rt, true);
    const mine = (run: typeof first) => run.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId) ?? [];
    expect(mine(first)).toEqual([expect.objectContaining({ regions: ['us-west-2', 'eu-west-1'], result: 'started' })]);
    // The second run sees the same gap while the execution runs: it joins it, never starts another.
    expect(mine(second)).toEqual([
      expect.objectContaining({ result: 'joined', executionName: mine(first)[0]?.executionName }),
    ]);
    await rt.waitForIdle();

    const after = await readiness(rt);
    expect(cellsOf(after, imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'ready' });
    expect(after.report.summary).toMatchObject({ readyRatio: 1, imagesNotReady: 0 });
    expect(rt.executions().filter((e) => e.name.includes(imageId))).toHaveLength(1);
    for (const region of DR)
      expect((await copiesOf(h, region, imageId)).filter((c) => c.State !== 'deregistered')).toHaveLength(1);

    // A further run has nothing to do.
    const again = await readiness(rt, true);
    expect(again.plan).toEqual({ redrive: [], repair: [], manual: [] });
  });

  describe('with replication running', () => {
    let h: Harness;

    it('a copy whose tags and permissions were edited by hand is drifted, then repaired on image and snapshots', async () => {
      h = await harness({ policy });
      cleanups.push(() => h.rt.stop());
      const { createImage } = await import('../replication/helpers.ts');
      const imageId = await createImage(h, 'web-2.0', { Team: 'core', Name: 'web' });
      await share(h, imageId, [{ UserId: '123456789012' }]);
      await h.rt.waitForIdle();
      expect(cellsOf(await readiness(h.rt), imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'ready' });

      // Someone edits the us-west-2 copy: changes a tag, removes one, and stops sharing it.
      const [copy] = await copiesOf(h, 'us-west-2', imageId);
      const copyId = copy?.ImageId ?? '';
      await h
        .ec2('us-west-2')
        .send(new CreateTagsCommand({ Resources: [copyId], Tags: [{ Key: 'Team', Value: 'someone-else' }] }));
      await h.ec2('us-west-2').send(new DeleteTagsCommand({ Resources: [copyId], Tags: [{ Key: 'dr-copy' }] }));
      await h.ec2('us-west-2').send(
        new ModifyImageAttributeCommand({
          ImageId: copyId,
          LaunchPermission: { Remove: [{ UserId: '123456789012' }] },
        }),
      );

      const drifted = await readiness(h.rt);
      const cell = drifted.report.rows
        .find((r) => r.sourceImageId === imageId)
        ?.cells.find((c) => c.region === 'us-west-2');
      expect(cell?.status).toBe('drifted');
      expect(cell?.drift.map((d) => d.kind)).toEqual(['tags', 'launch-permissions']);
      expect(cell?.reason).toBe(
        'tags missing dr-copy; changed Team; launch permissions not shared with account 123456789012',
      );
      expect(cellsOf(drifted, imageId)['eu-west-1']).toBe('ready');

      const repaired = await readiness(h.rt, true);
      expect(repaired.reconciliation?.repaired).toEqual([
        { region: 'us-west-2', copyImageId: copyId, sourceImageId: imageId, applied: ['tags', 'launch-permissions'] },
      ]);
      expect(repaired.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId)).toEqual([]);

      expect(cellsOf(await readiness(h.rt), imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'ready' });
      const [fixed] = await copiesOf(h, 'us-west-2', imageId);
      expect(tagsOf(fixed?.Tags)).toMatchObject({ Team: 'core', Name: 'web', 'dr-copy': 'true' });
      const snaps = await snapshots(h, 'us-west-2', fixed ? snapshotIdsOf(fixed) : []);
      for (const s of snaps) expect(tagsOf(s.Tags)).toMatchObject({ Team: 'core', 'dr-copy': 'true' });
      expect(await launchPermissions(h, 'us-west-2', copyId)).toEqual([{ UserId: '123456789012' }]);
    });

    it('a copy whose finalize failed (sharing refused) is kept, reported failed with the reason, then repaired by readiness', async () => {
      let refuse = true;
      const wrapTask = refusing('FinalizeCopy', () => refuse);
      h = await harness({ policy, wrapTask });
      cleanups.push(() => h.rt.stop());
      const { createImage } = await import('../replication/helpers.ts');
      const imageId = await createImage(h, 'api-3.1', { Team: 'api' });
      await share(h, imageId, [{ UserId: '123456789012' }]);
      await h.rt.waitForIdle();

      const [summary] = summaries(h.rt);
      for (const region of DR) {
        expect(summary?.regions.find((r) => r.region === region)).toMatchObject({
          status: 'failed',
          error: 'UnauthorizedOperation',
          reason: expect.stringMatching(/^finalize failed: .*not authorized/) as unknown as string,
          note: expect.stringMatching(/kept/) as unknown as string,
        });
        const copies = await copiesOf(h, region, imageId);
        expect(copies.map((c) => c.State)).toEqual(['available']);
        expect(await snapshots(h, region, snapshotIdsOf(copies[0]!))).toHaveLength(snapshotIdsOf(copies[0]!).length);
      }
      expect(Object.values(cellsOf(await readiness(h.rt), imageId))).toEqual(['drifted', 'drifted']);

      refuse = false;
      const repaired = await readiness(h.rt, true);
      expect(repaired.reconciliation?.repaired.map((r) => r.region).sort()).toEqual([...DR].sort());
      expect(repaired.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId)).toEqual([]);
      expect(cellsOf(await readiness(h.rt), imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'ready' });
      for (const region of DR) {
        const [copy] = await copiesOf(h, region, imageId);
        expect(tagsOf(copy?.Tags)).toMatchObject({ Team: 'api' });
        expect(await launchPermissions(h, region, copy?.ImageId ?? '')).toEqual([{ UserId: '123456789012' }]);
      }
    });

    it('a failed copy still in its region is failed, with the copy state reason', async () => {
      h = await harness({ policy });
      cleanups.push(() => h.rt.stop());
      const sourceId = h.rt.twin.seed.image(SOURCE, { name: 'db-1.0', tags: { Team: 'core' } });
      const provenance = {
        'ami-dr:role': 'replica',
        'ami-dr:source-image-id': sourceId,
        'ami-dr:source-region': SOURCE,
      };
      h.rt.twin.seed.image('us-west-2', {
        name: 'db-1.0',
        tags: provenance,
        state: 'failed',
        stateReason: { code: 'Client.InvalidKMSKey.InvalidState', message: 'The KMS key is disabled.' },
      });
      h.rt.twin.seed.image('eu-west-1', { name: 'db-1.0', tags: provenance, state: 'pending' });

      const run = await readiness(h.rt);
      const cells = run.report.rows.find((r) => r.sourceImageId === sourceId)?.cells ?? [];
      expect(cells.map((c) => [c.region, c.status, c.reason])).toEqual([
        ['us-west-2', 'failed', 'copy failed: The KMS key is disabled.'],
        ['eu-west-1', 'in-progress', 'copy is pending'],
      ]);
      expect(run.plan.redrive).toEqual([expect.objectContaining({ sourceImageId: sourceId, regions: ['us-west-2'] })]);
    });

    it('a disabled DR key: failed with the reason and never re-driven while disabled; once enabled, re-driven under a numbered name (joined while it runs) and ready, nothing failed left behind', async () => {
      h = await harness({ policy, keyStates: { 'eu-west-1': 'Disabled' } });
      cleanups.push(() => h.rt.stop());
      const { createImage } = await import('../replication/helpers.ts');
      const imageId = await createImage(h, 'api-1.0', { Team: 'core' });
      await h.rt.waitForIdle();
      // Replication cleaned up the failed copy; readiness says why the region has none, and does not hammer the key.
      const blocked = await readiness(h.rt, true);
      expect(cellsOf(blocked, imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'failed' });
      const cell = blocked.report.rows.find((r) => r.sourceImageId === imageId)?.cells[1];
      expect(cell?.reason).toBe('DR key alias/ami-dr is Disabled: copies into eu-west-1 fail until it is enabled');
      expect(blocked.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId)).toEqual([]);
      await h.rt.waitForIdle();
      expect(h.rt.executions().filter((e) => e.name.includes(imageId))).toHaveLength(1);

      const kms = new KMSClient({
        region: 'eu-west-1',
        endpoint: h.rt.twin.endpoint,
        credentials: { accessKeyId: 'ADMIN', secretAccessKey: 'x' },
      });
      await kms.send(new EnableKeyCommand({ KeyId: h.keys['eu-west-1'] }));
      // The first attempt ended moments ago: the re-drive waits out its back-off, and says until when.
      const early = await readiness(h.rt, true);
      const waiting = early.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId) ?? [];
      expect(waiting).toEqual([expect.objectContaining({ result: 'backing-off', retryAt: expect.any(String) })]);
      h.clock.advance(Date.parse(waiting[0]?.retryAt ?? '') - h.clock.now());
      const fix = await readiness(h.rt, true);
      const again = await readiness(h.rt, true);
      const mine = (run: typeof fix) => run.reconciliation?.redriven.filter((r) => r.sourceImageId === imageId) ?? [];
      expect(mine(fix)).toEqual([
        expect.objectContaining({
          regions: ['eu-west-1'],
          result: 'started',
          executionName: expect.stringMatching(/_r1$/),
        }),
      ]);
      expect(mine(again)).toEqual([
        expect.objectContaining({ result: 'joined', executionName: mine(fix)[0]?.executionName }),
      ]);
      await h.rt.waitForIdle();
      expect(
        h.rt
          .executions()
          .filter((e) => e.name.includes(imageId))
          .map((e) => e.name.slice(-3)),
      ).toEqual([expect.any(String), '_r1']);
      expect(cellsOf(await readiness(h.rt), imageId)).toEqual({ 'us-west-2': 'ready', 'eu-west-1': 'ready' });
      const eu = await copiesOf(h, 'eu-west-1', imageId);
      expect(eu.map((c) => c.State)).toEqual(['available']);
      const snaps = await h
        .ec2('eu-west-1')
        .send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'status', Values: ['error'] }] }));
      expect(snaps.Snapshots ?? []).toEqual([]);
    });
  });
});
