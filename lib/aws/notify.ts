import type { Clients } from './clients.ts';

/** What the notification adapter calls, for serverless.yml's least-privilege statements. */
export const REQUIRED_PERMISSIONS = ['sns:Publish'] as const;

/** The region an SNS topic lives in, read from its ARN (arn:aws:sns:<region>:<account>:<name>). */
export function topicRegion(topicArn: string): string {
  const region = topicArn.split(':')[3];
  if (!region) throw new Error(`not an SNS topic ARN: ${topicArn}`);
  return region;
}

/**
 * Publishes to the topic, with the clients' SNS client for the topic's region. SNS subjects: at most 100 printable
 * ASCII characters, no line breaks. The SDK's SNS modules are loaded on the first notification: most runs notify
 * nobody, and for summarize they are most of what a cold start would otherwise evaluate.
 */
export async function publishNotification(
  clients: Clients,
  topicArn: string,
  subject: string,
  message: unknown,
): Promise<void> {
  const { PublishCommand, SNSClient } = await import('@aws-sdk/client-sns');
  const sns = clients.get(SNSClient, topicRegion(topicArn));
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subject.replace(/[^\x20-\x7e]/g, ' ').slice(0, 100),
      Message: JSON.stringify(message, null, 2),
    }),
  );
}
