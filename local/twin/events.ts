import { randomUUID } from 'node:crypto';
import { evaluate, type Iam, type PolicyStatement } from './iam.ts';

/**
 * The twin's EventBridge: what AWS would put on the default bus of each region (CloudTrail API calls, native EC2
 * events). Subscribers get every event, with `region` set to where AWS delivers it, asynchronously and in order,
 * as a rule target would; `history` keeps them all for assertions and the demo. Every account the twin holds
 * publishes here (its events carry its `account`): each account's default bus is the events of that account.
 *
 * Cross-account delivery (a rule whose target is another account's bus, `putEventsFrom`) is refused unless the
 * rule's role may `events:PutEvents` on that bus and the bus's resource policy (`putPermission`) lets the sending
 * account put that event; a default bus takes only its own account's events otherwise, as AWS's does.
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

/** A statement of an event bus's resource-based policy (PutPermission, `AWS::Events::EventBusPolicy`). */
export interface BusPolicyStatement extends PolicyStatement {
  Sid: string;
  Principal: '*' | { AWS?: string | string[] };
}

/** One event a rule sent to another account's bus, and whether that bus took it. */
export interface CrossAccountPut {
  event: TwinEvent;
  /** `arn:aws:events:<region>:<account>:event-bus/<name>`. */
  busArn: string;
  /** The role the rule's target names (EventBridge assumes it to put the event). */
  roleArn: string;
  accepted: boolean;
  /** Why it was refused (the role's policy, or the bus's). */
  reason?: string;
}

const busAccount = (busArn: string): string => busArn.split(':')[4] ?? '';

export class EventBus {
  readonly history: TwinEvent[] = [];
  private readonly subscribers = new Set<EventSubscriber>();
  private readonly queue: TwinEvent[] = [];
  private draining: Promise<void> | undefined;
  private readonly busPolicies = new Map<string, Map<string, BusPolicyStatement>>();
  /** Every event sent to another account's bus, accepted or refused (a rule's FailedInvocations on AWS). */
  readonly crossAccount: CrossAccountPut[] = [];

  /** PutPermission: adds (or replaces, by Sid) a statement of the bus's resource policy. */
  putPermission(busArn: string, statement: BusPolicyStatement): void {
    let statements = this.busPolicies.get(busArn);
    if (!statements) this.busPolicies.set(busArn, (statements = new Map()));
    statements.set(statement.Sid, statement);
  }

  /** RemovePermission: the bus no longer takes what that statement allowed. */
  removePermission(busArn: string, sid: string): void {
    this.busPolicies.get(busArn)?.delete(sid);
  }

  /** The bus's resource policy statements. */
  busPolicy(busArn: string): BusPolicyStatement[] {
    return [...(this.busPolicies.get(busArn)?.values() ?? [])];
  }

  /**
   * A rule of the event's account sends it to the bus `target.busArn`, as EventBridge does with the target's role:
   * refused unless the role (defined in `iam`) allows `events:PutEvents` on the bus and, for another account's bus,
   * the bus policy allows the sending account to put the event (its `events:source` and `events:detail-type`). The
   * event keeps its `account`. Returns (and records) the outcome; the caller delivers an accepted event to the
   * receiving account's rules.
   */
  putEventsFrom(event: TwinEvent, target: { busArn: string; roleArn: string }, iam: Iam): CrossAccountPut {
    const put: CrossAccountPut = { event, ...target, accepted: false };
    const request = {
      action: 'events:PutEvents',
      resource: target.busArn,
      context: {
        'events:source': [event.source],
        'events:detail-type': event['detail-type'],
        'aws:PrincipalAccount': event.account,
      },
    };
    const role = iam.role(target.roleArn);
    if (!role) put.reason = `role ${target.roleArn} does not exist`;
    else if (evaluate(role.statements, request) !== 'Allow')
      put.reason = `${target.roleArn} is not authorized to perform: events:PutEvents on resource: ${target.busArn}`;
    else if (busAccount(target.busArn) !== event.account && !this.busAllows(target.busArn, event.account, request))
      put.reason = `the resource policy of ${target.busArn} does not allow account ${event.account} to put events`;
    else put.accepted = true;
    this.crossAccount.push(put);
    return put;
  }

  private busAllows(busArn: string, sender: string, request: Parameters<typeof evaluate>[1]): boolean {
    const names = (s: BusPolicyStatement) =>
      s.Principal === '*' ||
      [s.Principal.AWS ?? []].flat().some((p) => p === '*' || p === sender || p === `arn:aws:iam::${sender}:root`);
    return evaluate(this.busPolicy(busArn).filter(names), request) === 'Allow';
  }

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
