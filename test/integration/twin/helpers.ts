import { EC2Client } from '@aws-sdk/client-ec2';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin, type TwinOptions } from '../../../local/twin/twin.ts';

export const START = Date.UTC(2026, 0, 1);

export async function manualTwin(options: TwinOptions = {}): Promise<Twin & { clock: ManualClock }> {
  const clock = new ManualClock(START);
  const twin = await startTwin({ s3: false, ...options, clock });
  return Object.assign(twin, { clock });
}

/** A client that does not retry, so each modelled error reaches the test as it is. */
export function ec2(twin: Twin, region: string, accessKeyId = 'test'): EC2Client {
  return new EC2Client({
    region,
    endpoint: twin.endpoint,
    maxAttempts: 1,
    credentials: { accessKeyId, secretAccessKey: 'test' },
  });
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function failure(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}
