import type { Clock } from './clock.ts';

/**
 * EC2's request rate limits: a token bucket per account, region and action class (burst, refill per second), as
 * documented for EC2 API throttling. `scale` multiplies both burst and refill so tests can reach the limits with
 * few calls.
 *
 * Refill follows the twin clock, so moving a ManualClock forward refills the buckets as AWS would over that time.
 * It also follows real time: with a ManualClock that nobody advances, a throttled client retrying with backoff
 * would otherwise starve forever. Each bucket refills by the larger of the two elapsed times.
 */
export type ThrottleClass = 'CopyImage' | 'destructive' | 'tags' | 'describe' | 'describe-unfiltered' | 'mutating';

export const EC2_BUCKETS: Record<ThrottleClass, { burst: number; refillPerSecond: number }> = {
  CopyImage: { burst: 100, refillPerSecond: 1 },
  destructive: { burst: 100, refillPerSecond: 5 },
  tags: { burst: 100, refillPerSecond: 10 },
  describe: { burst: 100, refillPerSecond: 20 },
  'describe-unfiltered': { burst: 50, refillPerSecond: 10 },
  mutating: { burst: 50, refillPerSecond: 5 },
};

const DESTRUCTIVE = new Set(['DeregisterImage', 'DeleteSnapshot', 'ModifyImageAttribute', 'ModifySnapshotAttribute']);
const UNFILTERED_WHEN_BARE = new Set(['DescribeInstances', 'DescribeSnapshots', 'DescribeVolumes']);

export function throttleClass(action: string, params: Record<string, string>): ThrottleClass {
  if (action === 'CopyImage') return 'CopyImage';
  if (DESTRUCTIVE.has(action)) return 'destructive';
  if (action === 'CreateTags' || action === 'DeleteTags') return 'tags';
  if (/^(Describe|List|Get)/.test(action)) {
    if (UNFILTERED_WHEN_BARE.has(action)) {
      const keys = Object.keys(params);
      // Filters, ids or pagination make it a normal describe; owner lists alone do not.
      const narrowed = keys.some((k) =>
        /^(Filter\.|MaxResults$|NextToken$|InstanceId\.|SnapshotId\.|VolumeId\.)/.test(k),
      );
      if (!narrowed) return 'describe-unfiltered';
    }
    return 'describe';
  }
  return 'mutating';
}

export interface ThrottleSettings {
  enabled: boolean;
  /** Multiplies burst and refill (default 1). */
  scale?: number;
}

interface Bucket {
  tokens: number;
  twinAt: number;
  realAt: number;
}

export class Throttler {
  private enabled: boolean;
  private scale: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly clock: Clock,
    settings: ThrottleSettings = { enabled: false },
  ) {
    this.enabled = settings.enabled;
    this.scale = settings.scale ?? 1;
  }

  configure(enabled: boolean, scale?: number): void {
    this.enabled = enabled;
    if (scale !== undefined) {
      if (!(scale > 0)) throw new RangeError(`throttling scale must be > 0, got ${scale}`);
      this.scale = scale;
    }
    this.buckets.clear();
  }

  get settings(): Required<ThrottleSettings> {
    return { enabled: this.enabled, scale: this.scale };
  }

  /** Takes a token; false when the call is throttled. */
  take(region: string, cls: ThrottleClass): boolean {
    if (!this.enabled) return true;
    const { burst, refillPerSecond } = EC2_BUCKETS[cls];
    const size = Math.max(1, Math.round(burst * this.scale));
    const rate = refillPerSecond * this.scale;
    const key = `${region}:${cls}`;
    const twinNow = this.clock.now();
    const realNow = performance.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: size, twinAt: twinNow, realAt: realNow };
      this.buckets.set(key, bucket);
    }
    const elapsedMs = Math.max(twinNow - bucket.twinAt, realNow - bucket.realAt, 0);
    bucket.tokens = Math.min(size, bucket.tokens + (elapsedMs / 1000) * rate);
    bucket.twinAt = twinNow;
    bucket.realAt = realNow;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
