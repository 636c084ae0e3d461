import * as z from 'zod';

/**
 * The scheduled state machines' unit records, shared by retention and readiness (apart from lib/workflows/units.ts,
 * which the schedule's starter imports without zod).
 */
export const unitSchema = z.object({ accountId: z.string(), region: z.string() });

/** A unit whose invocation failed, as the state machine's Catch (UnitFailed) records it. */
export const failedUnitSchema = z.looseObject({
  failed: z.literal(true),
  unit: unitSchema,
  error: z.string().optional(),
  cause: z.string().optional(),
});
