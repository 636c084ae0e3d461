import type { Clock } from './clock.ts';
import type { Ec2Params } from './ec2-params.ts';
import type { XmlElements } from './ec2-xml.ts';
import type { Cursors } from './ec2-pages.ts';
import type { EventBus } from './events.ts';
import type { CallerIdentity } from './identity.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { TwinState } from './state.ts';

/** Knobs tests and fault injection turn at run time. */
export interface Ec2Settings {
  /** Twin time a CopyImage takes when no completion duration is asked for. */
  copyDurationMs: number;
  /** Twin time a CreateImage takes. */
  createDurationMs: number;
  /** Concurrent (pending) copies allowed per destination region. */
  copyQuota: number;
  /** Regions whose copies end `failed`, with the reason to report. */
  failCopies: Map<string, string>;
  /**
   * DeregisterImage's snapshot deletions fail: `internal-error` reports a snapshot so and keeps it; `omit-results`
   * keeps every snapshot of the image and answers without `deleteSnapshotResultSet`. Per image, with probability.
   */
  snapshotDeleteFault?: { mode: 'internal-error' | 'omit-results'; probability: number; random: () => number };
}

export interface Ec2Runtime {
  state: TwinState;
  clock: Clock;
  events: EventBus;
  lifecycle: Lifecycle;
  settings: Ec2Settings;
  cursors: Cursors;
  accountId: string;
}

/** What an EC2 action sees of one request. */
export interface Ec2Context extends Ec2Runtime {
  region: string;
  requestId: string;
  caller: CallerIdentity;
  params: Ec2Params;
}

/** An EC2 action returns the response's elements (after `<requestId>`); errors are thrown as `TwinServiceError` with EC2's own codes. */
export type Ec2Action = (ctx: Ec2Context) => XmlElements;

export type Ec2ActionTable = Record<string, Ec2Action>;
