import { DescribeImagesCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ListAliasesCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { createClients, ec2Client, kmsClient } from '../../../lib/aws/clients.ts';
import { runTwinCommand } from '../../../local/main.ts';
import type { Twin } from '../../../local/twin.ts';

describe('runTwinCommand', () => {
  it('prints the endpoints, serves a seeded account and stops when told', async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    let twin: Twin | undefined;
    const ready = new Promise<void>((resolve) => {
      void runTwinCommand({ port: 0, out: (line) => lines.push(line), signal: controller.signal, onReady: (t) => ((twin = t), resolve()) }).then((code) => lines.push(`exit ${code}`));
    });
    await ready;
    const endpoint = lines.find((l) => l.startsWith('AWS_ENDPOINT_URL='))?.slice('AWS_ENDPOINT_URL='.length) as string;
    const clients = createClients({ endpoint, maxAttempts: 1 });

    const reservations = (await ec2Client(clients, 'us-east-1').send(new DescribeInstancesCommand({}))).Reservations ?? [];
    const instance = reservations[0]?.Instances?.[0];
    const images = (await ec2Client(clients, 'us-east-1').send(new DescribeImagesCommand({ ImageIds: [instance?.ImageId as string] }))).Images;
    const aliases = await Promise.all(['us-west-2', 'eu-west-1'].map(async (r) => (await kmsClient(clients, r).send(new ListAliasesCommand({}))).Aliases?.map((a) => a.AliasName)));

    expect(endpoint).toBe(twin?.endpoint);
    expect(lines.some((l) => l.startsWith('AWS_ENDPOINT_URL_S3=http://127.0.0.1:'))).toBe(true);
    expect(images?.[0]?.State).toBe('available');
    for (const names of aliases) expect(names).toContain('alias/ami-dr');

    controller.abort();
    await expect.poll(() => lines.at(-1)).toBe('exit 0');
    await expect(fetch(endpoint)).rejects.toThrow();
  });
});
