import * as z from 'zod';
import type { s3Client } from '../aws/clients.ts';
import { getJsonReport, putJsonReport } from '../aws/reports.ts';
import { briefMessages, unitKey, type ScheduledJob, type WorkUnit } from './units.ts';
import { unitSchema } from './unit-schemas.ts';

type S3Client = ReturnType<typeof s3Client>;

/**
 * A scheduled run's data in the runs bucket (serverless.yml: RunsBucket, in the home stack only), so that no state
 * carries more than one unit: the plan step writes the unit list (`<job>/runs/<run>/units.json`, read by the
 * Distributed Map's ItemReader) and the units it could not plan (`failures.json`); the Map's ResultWriter writes
 * every unit's result under `<job>/results/<map run>/` (manifest.json, SUCCEEDED_n.json, FAILED_n.json: the Step
 * Functions developer guide, "ResultWriter"), which the aggregate step reads. The bucket's lifecycle rule expires
 * them. Without a report bucket the run's report is written there too (`report.json`): the execution's output
 * carries it only while it fits.
 */

/** An object of the run in the runs bucket, and how many entries it lists. */
export const runObjectSchema = z.object({ key: z.string(), count: z.number() });
export type RunObject = z.infer<typeof runObjectSchema>;

/** The Distributed Map's output once its ResultWriter has written the results: where the manifest is. */
export const resultWriterDetailsSchema = z.object({ Bucket: z.string(), Key: z.string() });
export type ResultWriterDetails = z.infer<typeof resultWriterDetailsSchema>;

export const runObjectKey = (job: ScheduledJob, run: string, name: 'units' | 'failures' | 'report'): string =>
  `${job}/runs/${run}/${name}.json`;

/** Writes a list of the run to the runs bucket. */
export async function writeRunList(s3: S3Client, bucket: string, key: string, entries: unknown[]): Promise<RunObject> {
  await putJsonReport(s3, bucket, key, entries);
  return { key, count: entries.length };
}

export async function readRunList(s3: S3Client, bucket: string, object: RunObject): Promise<unknown[]> {
  if (object.count === 0) return [];
  const list = await getJsonReport(s3, `s3://${bucket}/${object.key}`);
  if (!Array.isArray(list)) throw new Error(`s3://${bucket}/${object.key} is not a list`);
  return list;
}

const manifestSchema = z.looseObject({
  ResultFiles: z.looseObject({
    SUCCEEDED: z.array(z.looseObject({ Key: z.string() })).default([]),
    FAILED: z.array(z.looseObject({ Key: z.string() })).default([]),
  }),
});
const entrySchema = z.looseObject({
  Input: z.string(),
  Output: z.string().optional(),
  Error: z.string().optional(),
  Cause: z.string().optional(),
});

/** A child execution that failed as a whole (not caught inside it), as its result file lists it. */
export interface FailedChild {
  input: unknown;
  error: string;
  cause: string;
}

/**
 * The units' results as the ResultWriter wrote them: each succeeded child's output (its `Output`, a JSON string),
 * and each failed child's input with its error.
 */
async function readMapResults(
  s3: S3Client,
  details: ResultWriterDetails,
): Promise<{ outputs: unknown[]; failed: FailedChild[] }> {
  const manifest = manifestSchema.parse(await getJsonReport(s3, `s3://${details.Bucket}/${details.Key}`));
  const read = async (files: { Key: string }[]) =>
    (
      await Promise.all(
        files.map(async (f) => z.array(entrySchema).parse(await getJsonReport(s3, `s3://${details.Bucket}/${f.Key}`))),
      )
    ).flat();
  const succeeded = await read(manifest.ResultFiles.SUCCEEDED);
  const failed = await read(manifest.ResultFiles.FAILED);
  return {
    outputs: succeeded.map((e) => JSON.parse(e.Output ?? 'null') as unknown),
    failed: failed.map((e) => ({
      input: JSON.parse(e.Input) as unknown,
      error: e.Error ?? 'States.Runtime',
      cause: e.Cause ?? '',
    })),
  };
}

/**
 * The units' outputs in the plan's unit order, each parsed with the job's `schema`: a child's output (its result, or
 * the failure its Catch recorded), and a child that failed as a whole (an error its Catch cannot catch, such as
 * `States.DataLimitExceeded`) as a failed unit with that error.
 */
export async function unitOutputs<T extends { unit: WorkUnit }>(
  s3: S3Client,
  bucket: string,
  input: { results: ResultWriterDetails; units: RunObject },
  schema: z.ZodType<T>,
): Promise<T[]> {
  const { outputs, failed } = await readMapResults(s3, input.results);
  const units = z.array(unitSchema).parse(await readRunList(s3, bucket, input.units));
  const crashed = failed.map((f) => ({
    failed: true,
    unit: (f.input as { unit?: unknown }).unit,
    error: f.error,
    cause: briefMessages([f.cause], 'first')[0] ?? '',
  }));
  const results = [...outputs, ...crashed].map((o) => schema.parse(o));
  const order = new Map(units.map((u, i) => [unitKey(u), i]));
  const at = (r: T) => order.get(unitKey(r.unit)) ?? Number.MAX_SAFE_INTEGER;
  return results.sort((a, b) => at(a) - at(b));
}
