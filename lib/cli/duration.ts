import { UsageError } from './errors.ts';

const UNITS = { h: 3_600_000, m: 60_000, s: 1000 } as const;
/** The longest budget accepted: a run is hourly at most on a schedule; a day is a typo's upper bound. */
const MAX_MS = 24 * UNITS.h;

/**
 * A duration as typed on the command line: `90s`, `5m`, `1h`, `1h30m`. Returns milliseconds; anything else is a
 * UsageError naming the option.
 */
export function parseDuration(text: string, option: string, command: string): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  const [, h, m, s] = match ?? [];
  const ms = match ? Number(h ?? 0) * UNITS.h + Number(m ?? 0) * UNITS.m + Number(s ?? 0) * UNITS.s : Number.NaN;
  if (!match || !(ms > 0) || ms > MAX_MS) {
    throw new UsageError(
      `--${option} must be a duration between 1s and 24h, like 90s, 5m, 1h or 1h30m (not '${text}')`,
      command,
    );
  }
  return ms;
}
