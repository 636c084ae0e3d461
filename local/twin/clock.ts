/**
 * The twin's notion of time. Everything time-dependent in the twin (copy completion, deprecation, cooldowns,
 * token-bucket refill, event timestamps) reads a `Clock`, so tests can make an hour-long copy finish in a
 * millisecond and users get real time.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export type ClockListener = (now: number) => void;

/** Real time. */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }
}

/**
 * Time that moves only when told to. Listeners run synchronously after each move, so by the time `advance`
 * returns the twin has applied every transition that was due.
 */
export class ManualClock implements Clock {
  private current: number;
  private readonly listeners = new Set<ClockListener>();

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.current;
  }

  advance(ms: number): number {
    if (ms < 0) throw new RangeError(`ManualClock cannot go backwards (advance by ${ms} ms)`);
    return this.advanceTo(this.current + ms);
  }

  /** Moves to `ms`; a time in the past leaves the clock where it is (time never goes backwards). */
  advanceTo(ms: number | Date): number {
    const target = typeof ms === 'number' ? ms : ms.getTime();
    if (target > this.current) {
      this.current = target;
      for (const listener of [...this.listeners]) listener(this.current);
    }
    return this.current;
  }

  /** Returns a function that removes the listener. */
  onChange(listener: ClockListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export function isManualClock(clock: Clock): clock is ManualClock {
  return clock instanceof ManualClock;
}
