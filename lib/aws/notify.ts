import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';

/** What the notification adapter calls, for serverless.yml's least-privilege statements. */
export const REQUIRED_PERMISSIONS = ['sns:Publish'] as const;

/** The region an SNS topic lives in, read from its ARN (arn:aws:sns:<region>:<account>:<name>). */
export function topicRegion(topicArn: string): string {
  const region = topicArn.split(':')[3];
  if (!region) throw new Error(`not an SNS topic ARN: ${topicArn}`);
  return region;
}

/** SNS subjects: at most 100 printable ASCII characters, no line breaks. */
export async function publishNotification(
  sns: SNSClient,
  topicArn: string,
  subject: string,
  message: unknown,
): Promise<void> {
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subject.replace(/[^\x20-\x7e]/g, ' ').slice(0, 100),
      Message: JSON.stringify(message, null, 2),
    }),
  );
}
