import { describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeLaunchTemplatesCommand, EC2Client, paginateDescribeLaunchTemplates } from '@aws-sdk/client-ec2';
import { EC2_RATE_LIMITS, isThrottle, paced, rateClassOf, TokenBucketPacer } from '../../../lib/aws/pacer.ts';

/** A clock that only moves when the pacer sleeps, so the pacer alone decides how long things take. */
function fakeTime(start = 1_000_000) {
  let t = start;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
    elapsed: () => t - start,
  };
}

describe('TokenBucketPacer', () => {
  it('continues from buckets a previous invocation spent: refilled since then, not full', async () => {
    const time = fakeTime();
    // The previous invocation stopped 4 s ago with the buckets spent: 20 DeregisterImage tokens are back, not 100.
    const pacer = new TokenBucketPacer({ ...time, drainedAt: time.now() - 4_000 });
    for (let i = 0; i < 20; i++) await pacer.take('destructive');
    expect(time.elapsed()).toBe(0);
    await pacer.take('destructive');
    expect(time.elapsed()).toBe(200);
  });

  it('lets the burst through at once, then holds the refill rate', async () => {
    const time = fakeTime();
    const pacer = new TokenBucketPacer(time);
    for (let i = 0; i < 100; i++) await pacer.take('destructive');
    expect(time.elapsed()).toBe(0);
    for (let i = 0; i < 50; i++) await pacer.take('destructive');
    // 50 more at 5 per second: 10 s.
    expect(time.elapsed()).toBe(10_000);
    expect(pacer.taken.destructive).toBe(150);
  });

  it('keeps one bucket per class, with EC2 sizes', async () => {
    const time = fakeTime();
    const pacer = new TokenBucketPacer(time);
    for (let i = 0; i < EC2_RATE_LIMITS.mutating.burst; i++) await pacer.take('mutating');
    expect(pacer.delay('mutating')).toBe(200);
    expect(pacer.delay('destructive')).toBe(0);
  });

  it('holds the rate for concurrent callers (tokens are reserved, not raced for)', async () => {
    // Real time: all eleven ask at once and sleep side by side.
    const waits: number[] = [];
    const concurrent = new TokenBucketPacer({
      now: () => 0,
      sleep: async (ms) => void waits.push(ms),
      limits: { destructive: { burst: 1, refillPerSecond: 10 } },
    });
    await Promise.all(Array.from({ length: 11 }, () => concurrent.take('destructive')));
    expect(waits).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    // A ManualClock: each sleep moves the clock before the next caller asks; the total is the same.
    const time = fakeTime();
    const stepped = new TokenBucketPacer({ ...time, limits: { destructive: { burst: 1, refillPerSecond: 10 } } });
    await Promise.all(Array.from({ length: 11 }, () => stepped.take('destructive')));
    expect(time.elapsed()).toBe(1000);
  });

  it('refills with time, up to the burst only', async () => {
    const time = fakeTime();
    const pacer = new TokenBucketPacer({ ...time, scale: 0.1 }); // destructive: burst 10, 0.5/s
    for (let i = 0; i < 10; i++) await pacer.take('destructive');
    await time.sleep(3_600_000);
    time.sleeps.length = 0;
    for (let i = 0; i < 11; i++) await pacer.take('destructive');
    expect(time.sleeps).toEqual([2000]);
  });

  it('empties the bucket when EC2 throttles anyway', async () => {
    const time = fakeTime();
    const pacer = new TokenBucketPacer(time);
    pacer.throttled('describe');
    expect(pacer.delay('describe')).toBe(50);
  });

  it('call: retries throttles after waiting for the bucket, gives up after its attempts, never retries other errors', async () => {
    const time = fakeTime();
    const pacer = new TokenBucketPacer(time);
    const throttle = Object.assign(new Error('slow down'), { name: 'RequestLimitExceeded' });
    let n = 0;
    await expect(pacer.call('destructive', async () => (++n < 3 ? Promise.reject(throttle) : 'done'))).resolves.toBe(
      'done',
    );
    expect(n).toBe(3);
    expect(time.elapsed()).toBe(400); // two throttles: the bucket emptied, 200 ms per token at 5/s
    n = 0;
    await expect(pacer.call('destructive', async () => (++n, Promise.reject(throttle)), 4)).rejects.toThrow(
      'slow down',
    );
    expect(n).toBe(4);
    n = 0;
    await expect(pacer.call('destructive', async () => (++n, Promise.reject(new Error('denied'))))).rejects.toThrow(
      'denied',
    );
    expect(n).toBe(1);
  });

  it('paced: an SDK paginator takes a describe token before each page and retries a throttled page', async () => {
    const ec2 = mockClient(EC2Client);
    const throttle = Object.assign(new Error('slow down'), { name: 'RequestLimitExceeded' });
    ec2
      .on(DescribeLaunchTemplatesCommand)
      .resolvesOnce({ LaunchTemplates: [{ LaunchTemplateId: 'lt-1' }], NextToken: 'p2' })
      .rejectsOnce(throttle)
      .resolvesOnce({ LaunchTemplates: [{ LaunchTemplateId: 'lt-2' }] });
    const pacer = new TokenBucketPacer(fakeTime());
    const ids: string[] = [];
    const client = paced(new EC2Client({ region: 'us-east-1' }), pacer);
    for await (const page of paginateDescribeLaunchTemplates({ client, pageSize: 200 }, {}))
      ids.push(...(page.LaunchTemplates ?? []).map((t) => t.LaunchTemplateId ?? ''));
    expect(ids).toEqual(['lt-1', 'lt-2']);
    expect(pacer.taken.describe).toBe(3);
    const calls = ec2.commandCalls(DescribeLaunchTemplatesCommand);
    expect(calls).toHaveLength(3); // two pages, the second sent again after the throttle
    expect(calls[2]?.args[0].input).toEqual({ MaxResults: 200, NextToken: 'p2' });
    ec2.restore();
  });

  it('rejects a non-positive scale', () => {
    expect(() => new TokenBucketPacer({ scale: 0 })).toThrow(/scale must be > 0/);
  });

  it('classes actions as EC2 does, and recognises throttling errors', () => {
    expect(rateClassOf('DeregisterImage')).toBe('destructive');
    expect(rateClassOf('EnableImageDeprecation')).toBe('mutating');
    expect(rateClassOf('DescribeImageReferences')).toBe('describe');
    expect(rateClassOf('CopyImage')).toBe('CopyImage');
    expect(rateClassOf('CreateTags')).toBe('tags');
    expect(isThrottle(Object.assign(new Error('x'), { name: 'RequestLimitExceeded' }))).toBe(true);
    expect(isThrottle(new Error('x'))).toBe(false);
  });
});

describe('TokenBucketPacer under a deadline', () => {
  it('refuses a token that would come after the deadline, without waiting for it or reserving it', async () => {
    // Prepare: the destructive bucket (100, 5/s) empty; the next token is 200 ms away, the deadline 100 ms.
    const time = fakeTime();
    const pacer = new TokenBucketPacer({ ...time, deadline: time.now() + 100 });
    for (let i = 0; i < 100; i++) await pacer.take('destructive');

    // Act, Assess
    await expect(pacer.take('destructive')).rejects.toMatchObject({ name: 'DeadlineReachedError' });
    expect(time.elapsed()).toBe(0);
    expect(pacer.taken.destructive).toBe(100);
    expect(pacer.delay('destructive')).toBe(200);
  });

  it('ends a wait in progress when its signal fires', async () => {
    // Prepare: a sleep that never ends by itself; the next token 200 ms away.
    const controller = new AbortController();
    const pacer = new TokenBucketPacer({
      now: () => 0,
      sleep: () => new Promise<void>(() => {}),
      signal: controller.signal,
      limits: { destructive: { burst: 1, refillPerSecond: 5 } },
    });
    await pacer.take('destructive');

    // Act
    const waiting = pacer.take('destructive');
    controller.abort(Object.assign(new Error('deadline'), { name: 'DeadlineReachedError' }));

    // Assess
    await expect(waiting).rejects.toMatchObject({ name: 'DeadlineReachedError' });
  });
});
