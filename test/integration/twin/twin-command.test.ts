import { CreateImageCommand, DescribeImagesCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ListAliasesCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { createClients, ec2Client, kmsClient } from '../../../lib/aws/clients.ts';
import { loadPolicyFile } from '../../../lib/policy-file.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { runTwinCommand } from '../../../local/runtime/twin-command.ts';
import type { Twin } from '../../../local/twin/twin.ts';

describe('runTwinCommand', () => {
  it('prints the endpoints, serves a seeded account and stops when told', async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    let twin: Twin | undefined;
    const ready = new Promise<void>((resolve) => {
      void runTwinCommand({
        port: 0,
        out: (line) => lines.push(line),
        signal: controller.signal,
        onReady: (t) => ((twin = t), resolve()),
      }).then((code) => lines.push(`exit ${code}`));
    });
    await ready;
    const endpoint = lines.find((l) => l.startsWith('AWS_ENDPOINT_URL='))?.slice('AWS_ENDPOINT_URL='.length) as string;
    const clients = createClients({ endpoint, maxAttempts: 1 });

    const reservations =
      (await ec2Client(clients, 'us-east-1').send(new DescribeInstancesCommand({}))).Reservations ?? [];
    const instance = reservations[0]?.Instances?.[0];
    const images = (
      await ec2Client(clients, 'us-east-1').send(new DescribeImagesCommand({ ImageIds: [instance?.ImageId as string] }))
    ).Images;
    const aliases = await Promise.all(
      ['us-west-2', 'eu-west-1'].map(async (r) =>
        (await kmsClient(clients, r).send(new ListAliasesCommand({}))).Aliases?.map((a) => a.AliasName),
      ),
    );

    expect(endpoint).toBe(twin?.endpoint);
    expect(lines.some((l) => l.startsWith('AWS_ENDPOINT_URL_S3=http://127.0.0.1:'))).toBe(true);
    expect(images?.[0]?.State).toBe('available');
    for (const names of aliases) expect(names).toContain('alias/ami-dr');

    controller.abort();
    await expect.poll(() => lines.at(-1)).toBe('exit 0');
    await expect(fetch(endpoint)).rejects.toThrow();
  });

  it('with a policy, runs ami-dr on the twin: an image created through it is replicated to every DR region', async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    const policy = loadPolicyFile('ami-dr.config.yml');
    const ready = new Promise<void>((resolve) => {
      void runTwinCommand({
        port: 0,
        policy,
        clock: new ManualClock(Date.UTC(2026, 0, 1)),
        out: (line) => lines.push(line),
        signal: controller.signal,
        onReady: () => resolve(),
      }).then((code) => lines.push(`exit ${code}`));
    });
    await ready;
    const endpoint = lines.find((l) => l.startsWith('AWS_ENDPOINT_URL='))?.slice('AWS_ENDPOINT_URL='.length) as string;
    expect(lines).toContain('AMI_DR_STAGE=local');
    const clients = createClients({ endpoint, maxAttempts: 1 });
    const source = ec2Client(clients, 'us-east-1');
    const instanceId = (await source.send(new DescribeInstancesCommand({}))).Reservations?.[0]?.Instances?.[0]
      ?.InstanceId as string;
    const { ImageId } = await source.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'web-1.0.0' }));

    for (const dr of policy.regions.dr) {
      await expect
        .poll(
          async () => {
            const copies = await ec2Client(clients, dr.region).send(
              new DescribeImagesCommand({
                Owners: ['self'],
                Filters: [{ Name: 'tag:ami-dr:source-image-id', Values: [ImageId as string] }],
              }),
            );
            return copies.Images?.map((i) => i.State);
          },
          { timeout: 20_000, interval: 100 },
        )
        .toEqual(['available']);
    }

    controller.abort();
    await expect.poll(() => lines.at(-1)).toBe('exit 0');
  });
});
