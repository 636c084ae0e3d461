import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';
import { createClients, type Clients } from '../../../lib/aws/clients.ts';

export interface Harness extends Twin {
  clients: Clients;
  clock: ManualClock;
}

/** A twin on a free port with a clock the test drives, and SDK clients pointed at it (no retries, so errors surface). */
export async function startHarness(): Promise<Harness> {
  const clock = new ManualClock();
  const twin = await startTwin({ clock, s3: false });
  return { ...twin, clock, clients: createClients({ endpoint: twin.endpoint, maxAttempts: 1 }) };
}
