import { randomUUID } from 'node:crypto';

/**
 * The twin's EventBridge: what AWS would put on the default bus of each region (CloudTrail API calls, native EC2
 * events). Subscribers get every event, with `region` set to where AWS delivers it, asynchronously and in order,
 * as a rule target would; `history` keeps them all for assertions and the demo.
 */
export interface TwinEvent {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

export type EventSubscriber = (event: TwinEvent) => unknown;

export class EventBus {
  readonly history: TwinEvent[] = [];
  private readonly subscribers = new Set<EventSubscriber>();
  private readonly queue: TwinEvent[] = [];
  private draining: Promise<void> | undefined;

  /** Returns a function that unsubscribes. */
  subscribe(subscriber: EventSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  publish(event: Omit<TwinEvent, 'version' | 'id'>): TwinEvent {
    const full: TwinEvent = { version: '0', id: randomUUID(), ...event };
    this.history.push(full);
    this.queue.push(full);
    this.draining ??= new Promise<void>((resolve) => setImmediate(() => this.drain(resolve)));
    return full;
  }

  /** Resolves once every event published so far has been handed to the subscribers. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private drain(done: () => void): void {
    // A subscriber that publishes (or a state change it causes) lands at the end of the same queue: order holds.
    while (this.queue.length > 0) {
      const event = this.queue.shift() as TwinEvent;
      for (const subscriber of [...this.subscribers]) {
        try {
          const result = subscriber(event);
          if (result instanceof Promise) result.catch((error: unknown) => reportSubscriberError(error));
        } catch (error) {
          reportSubscriberError(error);
        }
      }
    }
    this.draining = undefined;
    done();
  }
}

function reportSubscriberError(error: unknown): void {
  // A failing rule target must not break the twin's API; AWS would retry or dead-letter it.
  console.error('twin: event subscriber failed:', error);
}
