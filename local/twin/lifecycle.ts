import { randomUUID } from 'node:crypto';
import type { Clock } from './clock.ts';
import type { EventBus } from './events.ts';
import type { ImageStateName, TwinImage } from './state.ts';

/**
 * Things that happen later in twin time (a copy finishing, a CreateImage completing) and the state changes they
 * make. Due work runs when the clock moves (ManualClock), before every request, and on a timer (SystemClock):
 * whichever comes first, nothing is ever observed late.
 */
const ANNOUNCED_STATES = new Set<ImageStateName>(['available', 'failed', 'deregistered', 'disabled']);

interface Task {
  at: number;
  run: () => void;
}

export class Lifecycle {
  private tasks: Task[] = [];
  private settling = false;

  constructor(
    private readonly clock: Clock,
    private readonly events: EventBus,
    private readonly accountId: string,
  ) {}

  /** Runs `run` once the twin clock reaches `at` (in scheduling order for equal times). */
  schedule(at: number, run: () => void): void {
    // Insert after every task due at or before `at`: the list stays ordered by time, then by scheduling order.
    let low = 0;
    let high = this.tasks.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.tasks[mid] as Task).at <= at) low = mid + 1;
      else high = mid;
    }
    this.tasks.splice(low, 0, { at, run });
  }

  /** When the next task is due, if any (for timers). */
  nextDue(): number | undefined {
    return this.tasks[0]?.at;
  }

  pendingCount(): number {
    return this.tasks.length;
  }

  /** Runs every task that is due now, including ones that due tasks schedule for now. */
  settle(): void {
    if (this.settling) return;
    this.settling = true;
    try {
      while (this.tasks.length > 0 && (this.tasks[0] as Task).at <= this.clock.now()) {
        (this.tasks.shift() as Task).run();
      }
    } finally {
      this.settling = false;
    }
  }

  /** Sets an image's state and announces it as EC2 does (`EC2 AMI State Change`, not for `pending`). */
  setImageState(image: TwinImage, state: ImageStateName, reason?: { code: string; message: string }): void {
    image.state = state;
    image.stateReason = reason;
    if (!ANNOUNCED_STATES.has(state)) return;
    this.events.publish({
      'detail-type': 'EC2 AMI State Change',
      source: 'aws.ec2',
      // Emitted in the account that owns the image (a DR account's copy is announced there, not here).
      account: image.ownerId || this.accountId,
      time: new Date(this.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: image.region,
      resources: [`arn:aws:ec2:${image.region}::image/${image.imageId}`],
      detail: { RequestId: randomUUID(), ImageId: image.imageId, State: state, ErrorMessage: reason?.message ?? '' },
    });
  }
}
