import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';

describe('ManualClock', () => {
  it('moves only forward and tells its listeners', () => {
    const clock = new ManualClock(1_000);
    const seen: number[] = [];
    clock.onChange((now) => seen.push(now));

    clock.advance(500);
    clock.advanceTo(1_200);
    clock.advanceTo(new Date(3_000));

    expect(clock.now()).toBe(3_000);
    expect(seen).toEqual([1_500, 3_000]);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });

  it('stops notifying a removed listener', () => {
    const clock = new ManualClock(0);
    let calls = 0;
    const off = clock.onChange(() => calls++);
    clock.advance(1);
    off();
    clock.advance(1);
    expect(calls).toBe(1);
  });
});
