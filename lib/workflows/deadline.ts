import { type Clients, withAbortSignal } from '../aws/clients.ts';
import { DeadlineReachedError } from '../domain/errors.ts';

/**
 * A run's deadline as something calls can be bounded by: an AbortSignal that fires when the deadline comes, the
 * clients with that signal on every SDK call (calls in flight, retry back-off and the SDK's rate-limiter waits end
 * with it), and the pacer's options (no token waits past the deadline). Without a deadline, everything as it was.
 */
export interface DeadlineBound {
  signal?: AbortSignal;
  clients: Clients;
  pacer: { deadline?: number; signal?: AbortSignal };
  /** Stops the timer; call when the bounded work is over. */
  dispose(): void;
}

/**
 * `deadline` is on `clock` (epoch ms). The timer runs in real time for the time left on `clock` at the start; on a
 * driven clock (a test's ManualClock) the pacer's deadline check is what stops the run.
 */
export function boundByDeadline(clients: Clients, deadline: number | undefined, clock: () => number): DeadlineBound {
  if (deadline === undefined) return { clients, pacer: {}, dispose: () => {} };
  const controller = new AbortController();
  const fire = (): void => controller.abort(new DeadlineReachedError(`the run's deadline passed`));
  const left = deadline - clock();
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (left <= 0) fire();
  else (timer = setTimeout(fire, left)).unref();
  return {
    signal: controller.signal,
    clients: withAbortSignal(clients, controller.signal),
    pacer: { deadline, signal: controller.signal },
    dispose: () => clearTimeout(timer),
  };
}
