import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { EventBus } from '../../../local/twin/events.ts';
import { Lifecycle } from '../../../local/twin/lifecycle.ts';

describe('Lifecycle', () => {
  it('runs due tasks in time order, equal times in scheduling order, and leaves the rest', () => {
    const clock = new ManualClock(0);
    const lifecycle = new Lifecycle(clock, new EventBus(), '000000000000');
    const ran: string[] = [];
    lifecycle.schedule(30, () => ran.push('c'));
    lifecycle.schedule(10, () => ran.push('a1'));
    lifecycle.schedule(20, () => ran.push('b'));
    lifecycle.schedule(10, () => ran.push('a2'));
    lifecycle.schedule(50, () => ran.push('late'));

    clock.advance(30);
    lifecycle.settle();

    expect(ran).toEqual(['a1', 'a2', 'b', 'c']);
    expect(lifecycle.pendingCount()).toBe(1);
    expect(lifecycle.nextDue()).toBe(50);
  });

  it('runs work that due tasks schedule for now in the same settle', () => {
    const clock = new ManualClock(0);
    const lifecycle = new Lifecycle(clock, new EventBus(), '000000000000');
    const ran: string[] = [];
    lifecycle.schedule(5, () => {
      ran.push('first');
      lifecycle.schedule(5, () => ran.push('follow-up'));
    });
    clock.advance(5);
    lifecycle.settle();
    expect(ran).toEqual(['first', 'follow-up']);
  });
});
