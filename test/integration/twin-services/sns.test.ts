import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateTopicCommand,
  ListTopicsCommand,
  PublishCommand,
  paginateListTopics,
  type SNSClient,
} from '@aws-sdk/client-sns';
import { startHarness, type Harness } from './harness.ts';
import { errorName } from './errors.ts';
import { snsClient } from '../../../lib/aws/clients.ts';

describe('twin SNS', () => {
  let twin: Harness;
  let sns: SNSClient;
  beforeAll(async () => {
    twin = await startHarness();
    sns = snsClient(twin.clients, 'us-east-1');
  });
  afterAll(async () => {
    await twin.stop();
  });

  it('CreateTopic returns the regional topic ARN and is idempotent by name', async () => {
    const first = await sns.send(new CreateTopicCommand({ Name: 'ami-dr-notifications' }));
    expect(first.TopicArn).toBe(`arn:aws:sns:us-east-1:${twin.accountId}:ami-dr-notifications`);
    const again = await sns.send(new CreateTopicCommand({ Name: 'ami-dr-notifications' }));
    expect(again.TopicArn).toBe(first.TopicArn);
    expect(await errorName(sns.send(new CreateTopicCommand({ Name: 'bad name!' })))).toBe('InvalidParameterException');
  });

  it('Publish records the message, subject and attributes for the topic', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'publish-me' }));
    const sent = await sns.send(
      new PublishCommand({
        TopicArn,
        Subject: 'replication failed',
        Message: JSON.stringify({ imageId: 'ami-1', region: 'eu-west-1' }),
        MessageAttributes: { outcome: { DataType: 'String', StringValue: 'failed' } },
      }),
    );
    expect(sent.MessageId).toBeTruthy();
    const recorded = twin.sns.messagesFor(TopicArn ?? '');
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      messageId: sent.MessageId,
      subject: 'replication failed',
      region: 'us-east-1',
      messageAttributes: { outcome: { dataType: 'String', stringValue: 'failed' } },
      timestamp: twin.clock.now(),
    });
    expect(JSON.parse(recorded[0]?.message ?? '{}')).toEqual({ imageId: 'ami-1', region: 'eu-west-1' });
  });

  it('Publish to an unknown topic, or to a topic of another region, fails with NotFound', async () => {
    const unknown = `arn:aws:sns:us-east-1:${twin.accountId}:nope`;
    expect(await errorName(sns.send(new PublishCommand({ TopicArn: unknown, Message: 'x' })))).toBe(
      'NotFoundException',
    );
    const { TopicArn } = await snsClient(twin.clients, 'eu-west-1').send(new CreateTopicCommand({ Name: 'eu-only' }));
    expect(await errorName(sns.send(new PublishCommand({ TopicArn, Message: 'x' })))).toBe('NotFoundException');
    expect(twin.sns.messagesFor(TopicArn ?? '')).toHaveLength(0);
  });

  it('Publish without a message fails with InvalidParameter', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'empty' }));
    expect(await errorName(sns.send(new PublishCommand({ TopicArn, Message: '' })))).toBe('InvalidParameterException');
  });

  it('ListTopics lists the region only, 100 per page', async () => {
    const region = snsClient(twin.clients, 'ap-south-1');
    for (let i = 0; i < 105; i++)
      await region.send(new CreateTopicCommand({ Name: `t-${String(i).padStart(3, '0')}` }));
    const first = await region.send(new ListTopicsCommand({}));
    expect(first.Topics).toHaveLength(100);
    expect(first.NextToken).toBeTruthy();
    const arns: string[] = [];
    for await (const p of paginateListTopics({ client: region }, {}))
      arns.push(...(p.Topics ?? []).map((t) => t.TopicArn ?? ''));
    expect(arns).toHaveLength(105);
    expect(new Set(arns).size).toBe(105);
    expect(arns.every((a) => a.startsWith('arn:aws:sns:ap-south-1:'))).toBe(true);
  });
});
