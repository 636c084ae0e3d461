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
  /** Regions whose new instances boot but fail their instance status check (reachability), with the reason. */
  failBoots: Map<string, string>;
  /** Regions where RunInstances answers InsufficientInstanceCapacity. */
  noCapacity: Set<string>;
  /** Actions that fail with HTTP 503 `Unavailable` at a rate (0-1), and how many calls each has seen. */
  unavailable: Map<string, { rate: number; calls: number }>;
  /**
   * DeregisterImage's snapshot deletions fail: `internal-error` reports a snapshot so and keeps it; `omit-results`
   * keeps every snapshot of the image and answers without `deleteSnapshotResultSet`. Per image, with probability.
   */
  snapshotDeleteFault?: { mode: 'internal-error' | 'omit-results'; probability: number; random: () => number };
}

/**
 * Whether this call of `action` is one of its injected 503s: spread evenly (call n fails when floor(n·rate) steps
 * up), so a rate of 0.3 fails exactly 3 calls in every 10, the same on every run.
 */
export function injectedUnavailable(settings: Ec2Settings, action: string): boolean {
  const fault = settings.unavailable.get(action);
  if (!fault) return false;
  fault.calls++;
  return Math.floor(fault.calls * fault.rate) > Math.floor((fault.calls - 1) * fault.rate);
}

export interface Ec2Runtime {
  state: TwinState;
  clock: Clock;
  events: EventBus;
  lifecycle: Lifecycle;
  settings: Ec2Settings;
  cursors: Cursors;
  accountId: string;
  /**
   * Every account whose resources the twin holds (this one included), by account id: another account's image
   * shared with this one is read from its owner's state (CopyImage of a shared AMI).
   */
  accounts?: ReadonlyMap<string, TwinState>;
  /** Copies an instance-store bundle to its copy's location, as CopyImage does (only when the twin runs S3). */
  copyBundle?: (fromLocation: string, toLocation: string) => void;
}

/** What an EC2 action sees of one request. */
export interface Ec2Context extends Ec2Runtime {
  region: string;
  requestId: string;
  caller: CallerIdentity;
  params: Ec2Params;
  /** Whether the caller's role allows ec2:DeleteSnapshot on it (DeregisterImage's DeleteAssociatedSnapshots). */
  mayDeleteSnapshot?: (snapshotId: string) => boolean;
}

/** An EC2 action returns the response's elements (after `<requestId>`); errors are thrown as `TwinServiceError` with EC2's own codes. */
export type Ec2Action = (ctx: Ec2Context) => XmlElements;

export type Ec2ActionTable = Record<string, Ec2Action>;
