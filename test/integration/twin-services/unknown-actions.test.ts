import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.ts';

// Raw signed-looking requests: the twin routes by the credential scope and must refuse what it does not model.
const auth = (service: string): string =>
  `AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=0`;

describe('twin services refuse actions they do not model', () => {
  let twin: Harness;
  beforeAll(async () => {
    twin = await startHarness();
  });
  afterAll(async () => {
    await twin.stop();
  });

  it.each([
    ['sts', 'GetSessionToken', '2011-06-15'],
    ['sns', 'DeleteTopic', '2010-03-31'],
    ['autoscaling', 'UpdateAutoScalingGroup', '2011-01-01'],
    // Names every object has are not actions either.
    ['sts', 'toString', '2011-06-15'],
    ['sns', 'constructor', '2010-03-31'],
  ])('%s %s => InvalidAction', async (service, action, version) => {
    const res = await fetch(twin.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth(service) },
      body: `Action=${action}&Version=${version}`,
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<Code>InvalidAction</Code>');
  });

  it.each(['Encrypt', 'toString'])('kms %s => UnknownOperationException', async (operation) => {
    const res = await fetch(twin.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `TrentService.${operation}`,
        authorization: auth('kms'),
      },
      body: '{}',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { __type: string }).__type).toBe('UnknownOperationException');
  });
});
