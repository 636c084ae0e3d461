import { DeadlineReachedError, isAwsError, THROTTLE_ERRORS } from '../domain/errors.ts';

/**
 * Paces EC2 calls to EC2's own token buckets (per account, region and action class), so that removing
 * thousands of images runs at the refill rate instead of into `RequestLimitExceeded`. The SDK's adaptive retries
 * stay on as the second line; this is the first. Time is injected (`now`, `sleep`), so a test or the local
 * twin's ManualClock can run an hour of pacing in milliseconds, and nothing else in ami-dr sleeps to rate-limit.
 */

export type RateClass = 'CopyImage' | 'destructive' | 'tags' | 'describe' | 'mutating';

export interface RateLimit {
  burst: number;
  refillPerSecond: number;
}

/** EC2's documented buckets (aws-reference.md, "Throttling"). */
export const EC2_RATE_LIMITS: Readonly<Record<RateClass, RateLimit>> = {
  CopyImage: { burst: 100, refillPerSecond: 1 },
  destructive: { burst: 100, refillPerSecond: 5 },
  tags: { burst: 100, refillPerSecond: 10 },
  describe: { burst: 100, refillPerSecond: 20 },
  mutating: { burst: 50, refillPerSecond: 5 },
};

const DESTRUCTIVE = new Set(['DeregisterImage', 'DeleteSnapshot', 'ModifyImageAttribute', 'ModifySnapshotAttribute']);

/** The bucket an EC2 action draws from. */
export function rateClassOf(action: string): RateClass {
  if (action === 'CopyImage') return 'CopyImage';
  if (DESTRUCTIVE.has(action)) return 'destructive';
  if (action === 'CreateTags' || action === 'DeleteTags') return 'tags';
  if (/^(Describe|List|Get)/.test(action)) return 'describe';
  return 'mutating';
}

export interface PacerOptions {
  /** Milliseconds since the epoch; default real time. */
  now?: () => number;
  /** Waits `ms`; default a timer. A ManualClock test passes `(ms) => clock.advance(ms)`. */
  sleep?: (ms: number) => Promise<void>;
  limits?: Partial<Record<RateClass, RateLimit>>;
  /** Multiplies every burst and refill rate (for accounts with raised limits, or scaled tests). */
  scale?: number;
  /**
   * Epoch ms (on `now`) after which no token is handed out: a wait that would end later fails at once with
   * DeadlineReachedError, instead of sleeping past the deadline.
   */
  deadline?: number;
  /** Aborts a wait in progress (the run's deadline signal): the wait fails with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Epoch ms at which the buckets were last emptied (a previous invocation of the same work spent them until it
   * stopped): they start refilled from then, not full, so a continuation does not open with a burst EC2 refuses.
   */
  drainedAt?: number;
}

interface Bucket {
  tokens: number;
  at: number;
  size: number;
  ratePerMs: number;
}

export class TokenBucketPacer {
  readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly buckets = new Map<RateClass, Bucket>();
  private readonly limits: Record<RateClass, RateLimit>;
  private readonly scale: number;
  private readonly deadline: number;
  private readonly signal: AbortSignal | undefined;
  private readonly drainedAt: number | undefined;
  /** Calls paced so far, by class (for reports and benches). */
  readonly taken: Record<RateClass, number> = { CopyImage: 0, destructive: 0, tags: 0, describe: 0, mutating: 0 };

  constructor(options: PacerOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.limits = { ...EC2_RATE_LIMITS, ...options.limits };
    this.scale = options.scale ?? 1;
    this.deadline = options.deadline ?? Number.POSITIVE_INFINITY;
    this.signal = options.signal;
    this.drainedAt = options.drainedAt;
    if (!(this.scale > 0)) throw new RangeError(`pacer scale must be > 0, got ${this.scale}`);
  }

  /** How long a call of this class would wait for its token right now (0: a token is there). */
  delay(cls: RateClass): number {
    const bucket = this.refill(cls);
    return bucket.tokens >= 1 ? 0 : Math.ceil((1 - bucket.tokens) / bucket.ratePerMs);
  }

  /**
   * Takes a token, waiting for it when the bucket is empty. Concurrent callers reserve tokens in turn (the
   * bucket goes into debt), so each waits for its own token and the rate holds however many call at once.
   */
  async take(cls: RateClass): Promise<void> {
    this.checkTime(0);
    const bucket = this.refill(cls);
    const wait = bucket.tokens >= 1 ? 0 : Math.ceil((1 - bucket.tokens) / bucket.ratePerMs);
    // A token that comes after the deadline is not reserved: the bucket stays as it was for whoever asks next.
    this.checkTime(wait);
    bucket.tokens -= 1;
    this.taken[cls]++;
    if (bucket.tokens >= 0) return;
    await this.wait(Math.ceil(-bucket.tokens / bucket.ratePerMs));
  }

  /** Throws DeadlineReachedError when the signal has fired or a wait of `ms` would end past the deadline. */
  private checkTime(ms: number): void {
    if (this.signal?.aborted) throw deadlineReason(this.signal);
    if (this.now() + ms > this.deadline) throw new DeadlineReachedError('the deadline comes before the next token');
  }

  /** Sleeps, unless the signal fires first. */
  private async wait(ms: number): Promise<void> {
    const signal = this.signal;
    if (!signal) return this.sleep(ms);
    let onAbort = (): void => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(deadlineReason(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.sleep(ms), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Calls `fn` once a token of `cls` is there. A throttle that got past the SDK's own retries means the bucket is
   * shared with someone else: empty ours, wait for the next token, and try again (up to `attempts` calls).
   */
  async call<T>(cls: RateClass, fn: () => Promise<T>, attempts = 6): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.take(cls);
      try {
        return await fn();
      } catch (error) {
        if (!isThrottle(error) || attempt >= attempts) throw error;
        this.throttled(cls);
      }
    }
  }

  /**
   * Waits `ms` on the pacer's clock (back-off between retries of a whole pass, not rate limiting); a back-off that
   * would end past the deadline fails at once with DeadlineReachedError.
   */
  async backoff(ms: number): Promise<void> {
    this.checkTime(ms);
    await this.wait(ms);
  }

  /** EC2 said RequestLimitExceeded: its bucket is emptier than ours (someone else calls too). Empty ours. */
  throttled(cls: RateClass): void {
    const bucket = this.refill(cls);
    bucket.tokens = Math.min(bucket.tokens, 0);
  }

  private refill(cls: RateClass): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(cls);
    if (!bucket) {
      const { burst, refillPerSecond } = this.limits[cls];
      const size = Math.max(1, Math.round(burst * this.scale));
      const drained = this.drainedAt !== undefined && this.drainedAt < now;
      bucket = {
        tokens: drained ? 0 : size,
        at: drained ? (this.drainedAt as number) : now,
        size,
        ratePerMs: (refillPerSecond * this.scale) / 1000,
      };
      this.buckets.set(cls, bucket);
    }
    if (now > bucket.at) {
      bucket.tokens = Math.min(bucket.size, bucket.tokens + (now - bucket.at) * bucket.ratePerMs);
      bucket.at = now;
    }
    return bucket;
  }
}

function deadlineReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DeadlineReachedError('the deadline has passed');
}

/** Throttling errors as the SDK names them after its own retries gave up. */
export function isThrottle(error: unknown): boolean {
  return isAwsError(error, ...THROTTLE_ERRORS);
}

/**
 * The client with its `send` paced: each call waits for a token of `cls` first, and a throttle is retried as in
 * `call`. Made for the SDK's paginators, which call `send` once per page; the client stays an instance of its
 * class, as they check.
 */
export function paced<C extends object>(client: C, pacer: TokenBucketPacer, cls: RateClass = 'describe'): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (property !== 'send' || typeof value !== 'function') return value;
      return (...args: unknown[]) => pacer.call(cls, () => Promise.resolve(value.apply(target, args)));
    },
  });
}
