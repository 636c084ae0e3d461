import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DisableImageCommand,
  DisableImageDeprecationCommand,
  DisableImageDeregistrationProtectionCommand,
  EnableImageCommand,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  ModifyImageAttributeCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { START, ec2, failure, manualTwin } from './helpers.ts';

const REGION = 'us-east-1';
const ORG = 'arn:aws:organizations::123456789012:organization/o-abcdefghij';
const OU = 'arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefghij';
let twin: Awaited<ReturnType<typeof manualTwin>>;

beforeAll(async () => {
  twin = await manualTwin();
});
afterAll(async () => {
  await twin.stop();
});

const image = (extra: object = {}) =>
  twin.seed.image(REGION, { name: `img-${Math.random().toString(36).slice(2)}`, ...extra });
const permissions = async (imageId: string) =>
  (await ec2(twin, REGION).send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' })))
    .LaunchPermissions;

describe('launch permissions', () => {
  it('adds and removes accounts, organizations and OUs', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    await client.send(
      new ModifyImageAttributeCommand({
        ImageId: imageId,
        LaunchPermission: {
          Add: [
            { UserId: '111122223333' },
            { UserId: '444455556666' },
            { OrganizationArn: ORG },
            { OrganizationalUnitArn: OU },
          ],
        },
      }),
    );
    const added = await permissions(imageId);
    await client.send(
      new ModifyImageAttributeCommand({
        ImageId: imageId,
        LaunchPermission: { Remove: [{ UserId: '111122223333' }, { OrganizationArn: ORG }] },
      }),
    );
    const after = await permissions(imageId);

    expect(added).toEqual([
      { UserId: '111122223333' },
      { UserId: '444455556666' },
      { OrganizationArn: ORG },
      { OrganizationalUnitArn: OU },
    ]);
    expect(after).toEqual([{ UserId: '444455556666' }, { OrganizationalUnitArn: OU }]);
  });

  it('accepts the older OperationType form and makes an unencrypted image public', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    await client.send(
      new ModifyImageAttributeCommand({
        ImageId: imageId,
        Attribute: 'launchPermission',
        OperationType: 'add',
        UserGroups: ['all'],
        UserIds: ['111122223333'],
      }),
    );
    const { Images } = await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    expect(await permissions(imageId)).toEqual([{ UserId: '111122223333' }, { Group: 'all' }]);
    expect(Images?.[0]?.Public).toBe(true);
  });

  it('never makes an encrypted image public', async () => {
    const imageId = image({ encrypted: true });
    const error = await failure(
      ec2(twin, REGION).send(
        new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: [{ Group: 'all' }] } }),
      ),
    );
    expect(error.name).toBe('InvalidParameterValue');
    expect(error.message).toMatch(/encrypted/i);
    expect(await permissions(imageId)).toEqual([]);
  });

  it('rejects malformed entries and images the caller does not own', async () => {
    const client = ec2(twin, REGION);
    const foreign = image({ ownerId: '111122223333', launchPermissions: [{ group: 'all' }] });
    const badAccount = await failure(
      client.send(
        new ModifyImageAttributeCommand({ ImageId: image(), LaunchPermission: { Add: [{ UserId: '12345' }] } }),
      ),
    );
    const badOrg = await failure(
      client.send(
        new ModifyImageAttributeCommand({ ImageId: image(), LaunchPermission: { Add: [{ OrganizationArn: 'org' }] } }),
      ),
    );
    const notOwner = await failure(
      client.send(
        new ModifyImageAttributeCommand({ ImageId: foreign, LaunchPermission: { Add: [{ UserId: '444455556666' }] } }),
      ),
    );
    const readForeign = await failure(
      client.send(new DescribeImageAttributeCommand({ ImageId: foreign, Attribute: 'launchPermission' })),
    );

    expect(badAccount.name).toBe('InvalidAMIAttributeItemValue');
    expect(badOrg.name).toBe('InvalidAMIAttributeItemValue');
    expect(notOwner.name).toBe('AuthFailure');
    expect(readForeign.name).toBe('AuthFailure');
  });
});

describe('description attribute', () => {
  it('is read and changed through the attribute calls', async () => {
    const client = ec2(twin, REGION);
    const imageId = image({ description: 'before' });
    const before = await client.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'description' }));
    await client.send(new ModifyImageAttributeCommand({ ImageId: imageId, Description: { Value: 'after' } }));
    const after = await client.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'description' }));
    const unknown = await failure(
      client.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'colour' as 'description' })),
    );

    expect(before.Description?.Value).toBe('before');
    expect(after).toMatchObject({ ImageId: imageId, Description: { Value: 'after' } });
    expect(unknown.name).toBe('InvalidParameterValue');
    // Deprecated attribute, answered with AuthFailure as EC2 does.
    expect(
      (
        await failure(
          client.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'blockDeviceMapping' })),
        )
      ).name,
    ).toBe('AuthFailure');
  });
});

describe('DisableImage / EnableImage', () => {
  it('disabling drops every launch permission and hides the image; enabling does not restore them', async () => {
    const client = ec2(twin, REGION);
    const imageId = image({ launchPermissions: [{ userId: '111122223333' }, { organizationArn: ORG }] });
    await client.send(new DisableImageCommand({ ImageId: imageId }));
    const hidden = await client.send(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'image-id', Values: [imageId] }] }),
    );
    const shown = await client.send(
      new DescribeImagesCommand({
        Owners: ['self'],
        IncludeDisabled: true,
        Filters: [{ Name: 'image-id', Values: [imageId] }],
      }),
    );
    const permissionsWhileDisabled = await permissions(imageId);
    await client.send(new EnableImageCommand({ ImageId: imageId }));
    const enabled = await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    await twin.settle();

    expect(hidden.Images).toEqual([]);
    expect(shown.Images?.[0]?.State).toBe('disabled');
    expect(permissionsWhileDisabled).toEqual([]);
    expect(enabled.Images?.[0]?.State).toBe('available');
    expect(await permissions(imageId)).toEqual([]);
    const changes = twin.events.history
      .filter((e) => e['detail-type'] === 'EC2 AMI State Change' && e.detail.ImageId === imageId)
      .map((e) => e.detail.State);
    expect(changes).toEqual(['disabled', 'available']);
  });

  it('cannot share a disabled image', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    await client.send(new DisableImageCommand({ ImageId: imageId }));
    const error = await failure(
      client.send(
        new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: [{ UserId: '111122223333' }] } }),
      ),
    );
    expect(error.name).toBe('InvalidAMIID.Unavailable');
  });
});

describe('deprecation', () => {
  it('sets a deprecation time (rounded to the minute) and removes it', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    const at = new Date(START + 30 * 86_400_000 + 20_000);
    const enabled = await client.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: at }));
    const deprecated = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    await client.send(new DisableImageDeprecationCommand({ ImageId: imageId }));
    const cleared = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];

    expect(enabled.Return).toBe(true);
    expect(deprecated?.DeprecationTime).toBe(new Date(START + 30 * 86_400_000).toISOString());
    expect(cleared?.DeprecationTime).toBeUndefined();
  });

  it('rejects a time in the past or more than ten years ahead', async () => {
    const client = ec2(twin, REGION);
    const past = await failure(
      client.send(new EnableImageDeprecationCommand({ ImageId: image(), DeprecateAt: new Date(START - 3_600_000) })),
    );
    const far = await failure(
      client.send(
        new EnableImageDeprecationCommand({ ImageId: image(), DeprecateAt: new Date(START + 11 * 365 * 86_400_000) }),
      ),
    );
    expect(past.name).toBe('InvalidParameterValue');
    expect(far.name).toBe('InvalidParameterValue');
  });
});

describe('deregistration protection', () => {
  it('blocks deregistering until disabled', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    await client.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    const described = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    const blocked = await failure(client.send(new DeregisterImageCommand({ ImageId: imageId })));
    await client.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    const result = await client.send(new DeregisterImageCommand({ ImageId: imageId }));

    expect(described?.DeregistrationProtection).toBe('enabled-without-cooldown');
    expect(blocked.name).toBe('OperationNotPermitted');
    expect(result.Return).toBe(true);
  });

  it('with cooldown, keeps blocking for 24 hours after it is disabled', async () => {
    const client = ec2(twin, REGION);
    const imageId = image();
    await client.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: true }));
    const disabled = await client.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    const duringCooldown = await failure(client.send(new DeregisterImageCommand({ ImageId: imageId })));
    const attribute = await client.send(
      new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'deregistrationProtection' }),
    );
    twin.clock.advance(24 * 3_600_000);
    const described = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];

    expect(disabled.Return).toBe('true');
    expect(duringCooldown.name).toBe('OperationNotPermitted');
    expect(attribute.DeregistrationProtection?.Value).toBe('enabled-with-cooldown');
    expect(described?.DeregistrationProtection).toBe('disabled');
    expect((await client.send(new DeregisterImageCommand({ ImageId: imageId }))).Return).toBe(true);
  });
});

describe('tags on images', () => {
  it('creates, overwrites and deletes tags (by key, by key and value, or all)', async () => {
    const client = ec2(twin, REGION);
    const a = image({ tags: { keep: '1', env: 'prod' } });
    const b = image();
    const tagsOf = async (imageId: string) =>
      Object.fromEntries(
        ((await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0]?.Tags ?? []).map((t) => [
          t.Key,
          t.Value,
        ]),
      );

    await client.send(
      new CreateTagsCommand({
        Resources: [a, b],
        Tags: [
          { Key: 'env', Value: 'dr' },
          { Key: 'owner', Value: 'ops' },
        ],
      }),
    );
    const created = [await tagsOf(a), await tagsOf(b)];
    await client.send(
      new DeleteTagsCommand({ Resources: [a], Tags: [{ Key: 'owner', Value: 'someone-else' }, { Key: 'env' }] }),
    );
    const partly = await tagsOf(a);
    await client.send(new DeleteTagsCommand({ Resources: [b] }));

    expect(created).toEqual([
      { keep: '1', env: 'dr', owner: 'ops' },
      { env: 'dr', owner: 'ops' },
    ]);
    expect(partly).toEqual({ keep: '1', owner: 'ops' });
    expect(await tagsOf(b)).toEqual({});
  });

  it('fails the whole call for an unknown image and rejects aws: keys', async () => {
    const client = ec2(twin, REGION);
    const a = image();
    const unknown = await failure(
      client.send(new CreateTagsCommand({ Resources: [a, 'ami-0123456789abcdef0'], Tags: [{ Key: 'x', Value: 'y' }] })),
    );
    const reserved = await failure(
      client.send(new CreateTagsCommand({ Resources: [a], Tags: [{ Key: 'aws:x', Value: 'y' }] })),
    );
    const unknownDelete = await failure(client.send(new DeleteTagsCommand({ Resources: ['ami-0123456789abcdef0'] })));

    expect(unknown.name).toBe('InvalidAMIID.NotFound');
    expect(twin.state.region(REGION).images.get(a)?.tags.has('x')).toBe(false);
    expect(reserved.name).toBe('InvalidParameterValue');
    expect(unknownDelete.name).toBe('InvalidAMIID.NotFound');
  });
});
