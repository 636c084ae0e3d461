import {
  CopyImageCommand,
  CreateImageCommand,
  CreateTagsCommand,
  DeregisterImageCommand,
  EC2Client,
  RegisterImageCommand,
} from '@aws-sdk/client-ec2';
import { EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskBinding } from '../../../local/twin/stepfunctions.ts';
import type { TwinEvent } from '../../../local/twin/events.ts';
import {
  DR,
  SOURCE,
  copiesOf,
  createImage,
  deprecate,
  harness,
  images,
  launchPermissions,
  refusing,
  share,
  snapshots,
  snapshotIdsOf,
  summaries,
  tagsOf,
  testPolicy,
  type Harness,
} from './helpers.ts';
import { ec2Client } from '../../../lib/aws/clients.ts';
import { startOrJoinReplication } from '../../../lib/workflows/replication.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

/** What the runtime's own EC2 clients went through: calls the SDK had to retry, and errors that reached ami-dr's code. */
function watchCalls(h: Harness): { retried: number; errors: Record<string, number> } {
  const seen = { retried: 0, errors: {} as Record<string, number> };
  // Every function's calls, each signed with its own role.
  const functions = ['onImageEvent', 'checkSource', 'startCopy', 'checkCopy', 'finalizeCopy', 'cleanupCopy'] as const;
  for (const region of [SOURCE, ...DR])
    for (const fn of functions) {
      ec2Client(h.rt.clientsFor(fn, SOURCE), region).middlewareStack.add(
        (next) => async (args) => {
          try {
            const out = await next(args);
            seen.retried += Math.max(0, (out.output.$metadata.attempts ?? 1) - 1);
            return out;
          } catch (error) {
            const name = (error as Error).name;
            seen.errors[name] = (seen.errors[name] ?? 0) + 1;
            seen.retried += Math.max(
              0,
              ((error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1) - 1,
            );
            throw error;
          }
        },
        { step: 'initialize', name: `watchCalls-${region}` },
      );
    }
  return seen;
}

const apiCallEvent = (h: Harness, imageId: string): TwinEvent => {
  const event = h.rt.twin.events.history.find(
    (e) =>
      e['detail-type'] === 'AWS API Call via CloudTrail' &&
      (e.detail.responseElements as { imageId?: string } | null)?.imageId === imageId,
  );
  if (!event) throw new Error(`no CloudTrail event for ${imageId}`);
  return event;
};

describe('replication on the twin, through the real SDK clients', () => {
  it('1. copies a new EBS image to both DR regions: encrypted under each region key, equal tags, permissions, deprecation, provenance', async () => {
    h = await harness();
    const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdefghij';
    const imageId = await createImage(h, 'web-2026.01.01', { Team: 'web', CostCenter: 'cc-1', Family: 'web' });
    await share(h, imageId, [{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }]);
    const deprecateAt = new Date(Date.UTC(2026, 6, 1));
    await deprecate(h, imageId, deprecateAt);

    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    for (const region of DR) {
      const copies = await copiesOf(h, region, imageId);
      expect(copies).toHaveLength(1);
      const copy = copies[0]!;
      expect(copy.State).toBe('available');
      const expectedUserTags = { Team: 'web', Family: 'web', 'dr-copy': 'true' };
      expect(tagsOf(copy.Tags)).toMatchObject({
        ...expectedUserTags,
        'ami-dr:role': 'replica',
        'ami-dr:source-image-id': imageId,
        'ami-dr:source-region': SOURCE,
      });
      expect(tagsOf(copy.Tags)).not.toHaveProperty('CostCenter');
      expect(tagsOf(copy.Tags)['ami-dr:replicated-at']).toBeDefined();
      expect(tagsOf(copy.Tags)['ami-dr:source-created-at']).toBeDefined();
      const snaps = await snapshots(h, region, snapshotIdsOf(copy));
      expect(snaps.length).toBeGreaterThan(0);
      for (const snap of snaps) {
        expect(snap.Encrypted).toBe(true);
        expect(snap.KmsKeyId).toBe(h.keys[region]);
        expect(tagsOf(snap.Tags)).toMatchObject({ ...expectedUserTags, 'ami-dr:role': 'replica' });
        expect(tagsOf(snap.Tags)).not.toHaveProperty('CostCenter');
      }
      const perms = await launchPermissions(h, region, copy.ImageId!);
      expect(perms).toEqual(
        expect.arrayContaining([{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }]),
      );
      expect(perms).toHaveLength(3);
      expect(new Date(copy.DeprecationTime!).getTime()).toBe(deprecateAt.getTime());
    }
    expect(h.rt.metrics.filter((m) => m.name === 'ReplicationSucceeded').map((m) => m.value)).toEqual([2]);
  });

  it('2. the same event three times, and a CloudTrail plus an AMI State Change event for one image, make one copy per region', async () => {
    h = await harness();
    const imageId = await createImage(h, 'app-1');
    const event = apiCallEvent(h, imageId);
    await h.rt.putEvent(event);
    await h.rt.putEvent(event);
    await h.rt.waitForIdle();
    // Once more after the execution ended: ExecutionAlreadyExists is success, not a second run.
    await h.rt.putEvent(event);
    await h.rt.waitForIdle();

    const stateChange = h.rt.twin.events.history.find(
      (e) => e['detail-type'] === 'EC2 AMI State Change' && e.detail.ImageId === imageId,
    );
    expect(stateChange?.detail.State).toBe('available');
    expect(h.rt.executions()).toHaveLength(1);
    expect(h.rt.deliveries.map((d) => d.outcome?.action)).toEqual(
      expect.arrayContaining(['started', 'already-started']),
    );
    expect(h.rt.deliveries.length).toBeGreaterThanOrEqual(5);
    for (const region of DR) expect(await copiesOf(h, region, imageId)).toHaveLength(1);
  });

  it('3. with throttling on at scaled-down AWS bucket sizes, every copy succeeds', async () => {
    // A tenth of AWS's buckets: 10 DescribeImages at once per region, 10 CopyImage, 5 other mutating calls.
    h = await harness({ twinOptions: { throttling: { enabled: true, scale: 0.1 } } });
    const calls = watchCalls(h);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await createImage(h, `svc-${i}`, { Team: 't' }));
    await h.rt.waitForIdle();

    expect(calls.retried + (calls.errors.RequestLimitExceeded ?? 0)).toBeGreaterThan(0);
    expect(h.rt.dlq).toEqual([]);
    for (const id of ids) {
      for (const region of DR) {
        const copies = await copiesOf(h, region, id);
        expect(copies.map((c) => c.State)).toEqual(['available']);
        expect(tagsOf(copies[0]!.Tags)['ami-dr:replicated-at']).toBeDefined();
      }
    }
    expect(summaries(h.rt).map((s) => s.outcome)).toEqual(ids.map(() => 'replicated'));
  });

  it('4. with a quota of 2 concurrent copies and 10 images at once, all are copied and never more than 2 are in flight per region', async () => {
    h = await harness({ twinOptions: { copyQuota: 2 } });
    const calls = watchCalls(h);
    const maxInFlight: Record<string, number> = Object.fromEntries(DR.map((r) => [r, 0]));
    const observe = () => {
      for (const region of DR) {
        const n = [...h!.rt.twin.state.region(region).images.values()].filter((i) => i.state === 'pending').length;
        maxInFlight[region] = Math.max(maxInFlight[region] ?? 0, n);
      }
    };
    const stopWatching = h.clock.onChange(observe);
    const unsubscribe = h.rt.twin.events.subscribe(observe);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await createImage(h, `batch-${i}`));
    await h.rt.waitForIdle();
    stopWatching();
    unsubscribe();

    expect(calls.errors.ResourceLimitExceeded).toBeGreaterThan(0);
    for (const region of DR) {
      expect(maxInFlight[region]).toBe(2);
      for (const id of ids) expect((await copiesOf(h, region, id)).map((c) => c.State)).toEqual(['available']);
    }
    expect(summaries(h.rt).every((s) => s.outcome === 'replicated')).toBe(true);
  });

  it('5. a disabled key in one DR region fails that region with the reason, removes the copy and its snapshots, and the other region is available', async () => {
    const topicArn = 'arn:aws:sns:us-east-1:000000000000:ami-dr-alerts';
    h = await harness({
      policy: testPolicy({ notifications: { snsTopicArn: topicArn } }),
      keyStates: { 'eu-west-1': 'Disabled' },
    });
    h.rt.twin.sns.createTopic('us-east-1', '000000000000', 'ami-dr-alerts');
    const imageId = await createImage(h, 'db-1', { Team: 'db' });
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('partial');
    const failed = summary?.regions.find((r) => r.region === 'eu-west-1');
    expect(failed).toMatchObject({ status: 'failed', error: 'CopyFailedError' });
    expect(failed?.reason).toMatch(/disabled/);
    expect(failed?.cleanup?.deregistered).toHaveLength(1);
    expect(failed?.cleanup?.snapshotsDeleted.length).toBeGreaterThan(0);
    expect(await copiesOf(h, 'eu-west-1', imageId)).toEqual([]);
    expect(await snapshots(h, 'eu-west-1', failed?.cleanup?.snapshotsDeleted ?? []).catch((e: Error) => e.name)).toBe(
      'InvalidSnapshot.NotFound',
    );
    expect(
      [...h.rt.twin.state.region('eu-west-1').snapshots.values()].filter(
        (s) => s.tags.get('ami-dr:source-image-id') === imageId,
      ),
    ).toEqual([]);
    expect((await copiesOf(h, 'us-west-2', imageId)).map((c) => c.State)).toEqual(['available']);
    const messages = h.rt.twin.sns.messagesFor(topicArn);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.subject).toContain('eu-west-1');
    expect(h.rt.metrics.find((m) => m.name === 'ReplicationFailed')?.value).toBe(1);
  });

  it('6. events for a replica, a failed call, another account, ami-dr itself, an excluded image, and malformed events: no execution, a log line each, nothing changed', async () => {
    const lines: { message: string; data: Record<string, unknown> }[] = [];
    const log = {
      info: (message: string, data: Record<string, unknown> = {}) => lines.push({ message, data }),
      warn: () => undefined,
    };
    h = await harness({ log, policy: testPolicy({ selector: { excludeTags: { 'ami-dr:skip': 'true' } } }) });
    await createImage(h, 'looks-like-a-copy', { 'ami-dr:role': 'replica' });
    await createImage(h, 'skip-me', { 'ami-dr:skip': 'true' });
    // A failed CreateImage (no such instance) is recorded by CloudTrail with its errorCode.
    await expect(
      h.ec2(SOURCE).send(new CreateImageCommand({ InstanceId: 'i-0123456789abcdef0', Name: 'nope' })),
    ).rejects.toThrow();
    // A copy made by ami-dr's own role into a source region (as when regions replicate to each other): its
    // CloudTrail record names the role, its AMI State Change event finds the replica tag.
    const own = new EC2Client({
      region: SOURCE,
      endpoint: h.rt.twin.endpoint,
      credentials: { accessKeyId: 'AMIDRLAMBDA', secretAccessKey: 'x' },
    });
    const elsewhere = h.rt.twin.seed.image('us-west-2', { name: 'west-image' });
    await own.send(
      new CopyImageCommand({
        SourceRegion: 'us-west-2',
        SourceImageId: elsewhere,
        Name: 'west-image',
        TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'ami-dr:role', Value: 'replica' }] }],
      }),
    );
    await h.rt.waitForIdle();
    const real = h.rt.twin.events.history.find(
      (e) =>
        e['detail-type'] === 'AWS API Call via CloudTrail' &&
        e.detail.eventName === 'CreateImage' &&
        !e.detail.errorCode,
    );
    await h.rt.putEvent({
      ...real,
      account: '999999999999',
      detail: { ...real!.detail, recipientAccountId: '999999999999' },
    });
    const malformed = [
      { ...real, detail: { ...real!.detail, responseElements: { imageId: 'not-an-image' } } },
      { ...real, time: 'yesterday' },
      {
        version: '0',
        id: 'x',
        source: 'aws.ec2',
        'detail-type': 'EC2 AMI State Change',
        region: SOURCE,
        account: '000000000000',
        detail: { State: 'available' },
      },
    ];
    for (const event of malformed) await h.rt.putEvent(event);
    await h.rt.waitForIdle();

    expect(h.rt.executions()).toEqual([]);
    const reasons = h.rt.deliveries.flatMap((d) => (d.outcome?.action === 'skipped' ? [d.outcome.reason] : []));
    expect(reasons).toEqual(
      expect.arrayContaining(['replica', 'selector', 'call-failed', 'own-role', 'another-account']),
    );
    for (const reason of ['replica', 'selector', 'call-failed', 'own-role', 'another-account']) {
      expect(
        lines.some(
          (l) => l.message === 'event not acted on' && l.data.reason === reason && typeof l.data.detail === 'string',
        ),
      ).toBe(true);
    }
    expect(h.rt.dlq).toHaveLength(3);
    for (const letter of h.rt.dlq) {
      expect(letter.error).toBe('MalformedEventError');
      expect(letter.attempts).toBe(3);
    }
    expect(h.rt.dlq.map((l) => l.message).join('\n')).toMatch(/imageId|time|ImageId/);
    expect(await images(h, 'eu-west-1')).toEqual([]);
    expect((await images(h, 'us-west-2')).map((i) => i.ImageId)).toEqual([elsewhere]);
  });

  it.each([
    ['unchanged', false],
    ['tagged meanwhile', true],
  ])(
    "a re-drive after a failed copy was cleaned up copies again (source %s): the dead copy's ClientToken is not reused",
    async (_, retag) => {
      h = await harness({ keyStates: { 'eu-west-1': 'Disabled' } });
      const imageId = await createImage(h, 'db-1', { Team: 'db' });
      await h.rt.waitForIdle();
      expect(await copiesOf(h, 'eu-west-1', imageId)).toEqual([]);
      const kms = new KMSClient({
        region: 'eu-west-1',
        endpoint: h.rt.twin.endpoint,
        credentials: { accessKeyId: 'BUILDER', secretAccessKey: 'x' },
      });
      await kms.send(new EnableKeyCommand({ KeyId: h.keys['eu-west-1'] }));
      if (retag)
        await h
          .ec2(SOURCE)
          .send(new CreateTagsCommand({ Resources: [imageId], Tags: [{ Key: 'Owner', Value: 'ops' }] }));

      await startOrJoinReplication(
        { clients: h.rt.clients, policy: h.rt.policy, stateMachineArn: h.rt.stateMachineArn(SOURCE) },
        SOURCE,
        imageId,
        { redrive: true },
      );
      await h.rt.waitForIdle();

      const redrive = summaries(h.rt).at(-1);
      expect(redrive?.outcome).toBe('replicated');
      expect(redrive?.regions.find((r) => r.region === 'us-west-2')).toMatchObject({ adopted: true });
      for (const region of DR) expect((await copiesOf(h, region, imageId)).map((c) => c.State)).toEqual(['available']);
      if (retag)
        expect(tagsOf((await copiesOf(h, 'eu-west-1', imageId))[0]?.Tags)).toMatchObject({ Owner: 'ops', Team: 'db' });
    },
  );

  it('a later execution that adopts available copies and then fails to finalize them keeps them: cleanup never removes a copy that was in service', async () => {
    let refuse = false;
    const wrapTask = refusing('FinalizeCopy', () => refuse);
    h = await harness({ wrapTask });
    const imageId = await createImage(h, 'in-service');
    await h.rt.waitForIdle();
    const before = await Promise.all(
      DR.map(async (region) => (await copiesOf(h!, region, imageId)).map((c) => c.ImageId)),
    );

    refuse = true;
    await startOrJoinReplication(
      { clients: h.rt.clients, policy: h.rt.policy, stateMachineArn: h.rt.stateMachineArn(SOURCE) },
      SOURCE,
      imageId,
      { redrive: true },
    );
    await h.rt.waitForIdle();

    const redrive = summaries(h.rt).at(-1);
    expect(redrive?.outcome).toBe('failed');
    for (const [i, region] of DR.entries()) {
      expect(redrive?.regions.find((r) => r.region === region)).toMatchObject({
        status: 'failed',
        error: 'UnauthorizedOperation',
        adopted: true,
        note: expect.stringMatching(/kept/) as unknown as string,
      });
      const after = await copiesOf(h, region, imageId);
      expect(after.map((c) => c.ImageId)).toEqual(before[i]);
      expect(after.map((c) => c.State)).toEqual(['available']);
      expect(await snapshots(h, region, snapshotIdsOf(after[0]!))).toHaveLength(snapshotIdsOf(after[0]!).length);
    }
  });

  it('7. a StartCopy task retried after CopyImage succeeded (lost Lambda response) still makes one copy', async () => {
    let lost = 0;
    const wrapTask = (state: string, task: TaskBinding): TaskBinding =>
      state !== 'StartCopy'
        ? task
        : async (input) => {
            const out = await task(input);
            if (lost < 2) {
              lost++;
              throw Object.assign(new Error('Lambda response lost after CopyImage succeeded'), {
                name: 'Lambda.ServiceException',
              });
            }
            return out;
          };
    h = await harness({ wrapTask });
    const imageId = await createImage(h, 'retry-me');
    await h.rt.waitForIdle();

    expect(lost).toBe(2);
    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    for (const region of DR) expect((await copiesOf(h, region, imageId)).map((c) => c.State)).toEqual(['available']);
    expect(summary?.regions.filter((r) => r.adopted)).toHaveLength(2);
    const copyCalls = h.rt.twin.events.history.filter((e) => e.detail.eventName === 'CopyImage' && !e.detail.errorCode);
    expect(copyCalls).toHaveLength(2);
  });

  it('8. an instance-store source is copied, and reported as unencrypted by necessity', async () => {
    h = await harness();
    const out = await h
      .ec2(SOURCE)
      .send(new RegisterImageCommand({ Name: 'legacy-s3', ImageLocation: 'bundles/legacy/image.manifest.xml' }));
    const imageId = out.ImageId!;
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    for (const region of DR) {
      const result = summary?.regions.find((r) => r.region === region);
      expect(result).toMatchObject({ status: 'available', encrypted: false });
      expect(result?.note).toMatch(/instance-store.*unencrypted/);
      const [copy] = await copiesOf(h, region, imageId);
      expect(copy?.RootDeviceType).toBe('instance-store');
      expect(copy?.State).toBe('available');
    }
  });

  it('a copy still pending at the deadline is removed and its region reported as timed out', async () => {
    h = await harness({
      policy: testPolicy({ replication: { deadlineHours: 1 } }),
      twinOptions: { copyDurationMs: 3 * 3600_000 },
    });
    const imageId = await createImage(h, 'slow-1');
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('failed');
    for (const region of DR) {
      expect(summary?.regions.find((r) => r.region === region)).toMatchObject({
        status: 'failed',
        error: 'CopyTimedOutError',
      });
      expect(await copiesOf(h, region, imageId)).toEqual([]);
    }
  });

  it('a source deregistered before it became available ends the execution cleanly, with the reason', async () => {
    h = await harness();
    const imageId = await createImage(h, 'short-lived');
    await h.ec2(SOURCE).send(new DeregisterImageCommand({ ImageId: imageId }));
    await h.rt.waitForIdle();

    const [execution] = h.rt.executions();
    expect(execution?.status).toBe('SUCCEEDED');
    const output = JSON.parse(execution?.output ?? '{}') as { outcome?: string; reason?: string };
    expect(output.outcome).toBe('skipped');
    expect(output.reason).toMatch(/no longer exists|deregistered/);
    for (const region of DR) expect(await images(h, region)).toEqual([]);
  });
});
