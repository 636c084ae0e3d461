import { pathToFileURL } from 'node:url';
import type { Policy } from '../../lib/domain/policy.ts';
import { SystemClock, type Clock } from '../twin/clock.ts';
import { startLocalRuntime } from './runtime.ts';
import { startTwin, type Twin } from '../twin/twin.ts';

/**
 * `npm run twin` / `ami-dr twin`: the local twin for people, on a fixed port with real time. Given a policy, it also
 * runs ami-dr on it as a deployment would: the onImageEvent rules from serverless.yml, the replicate state machine
 * (stage `local`) and its tasks, so an image created through the twin is replicated, and `ami-dr replicate` and
 * `readiness --reconcile` find their state machine. It is seeded with what ami-dr needs to do anything at all (the
 * policy's alias keys in its DR regions, an instance to image in the source region), prints the environment to
 * point SDKs and the AWS CLI at it, and runs until interrupted.
 */
export const DEFAULT_TWIN_PORT = 4599;
export const LOCAL_STAGE = 'local';
const DEFAULT_SOURCE_REGION = 'us-east-1';
const DEFAULT_DR_KEYS = [
  { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
  { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
];

export interface TwinCommandOptions {
  port?: number;
  accountId?: string;
  /** Run ami-dr itself on the twin under this policy (without one, only the AWS APIs are served). */
  policy?: Readonly<Policy>;
  /** Default: real time. */
  clock?: Clock;
  /** Where to print (default stdout). */
  out?: (line: string) => void;
  /** Stops the twin when aborted (besides SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Called once the twin is up and seeded. */
  onReady?: (twin: Twin) => void;
}

/** Runs the twin until SIGINT, SIGTERM or `signal`; resolves with the exit code. */
export async function runTwinCommand(options: TwinCommandOptions = {}): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const twinOptions = { port: options.port ?? DEFAULT_TWIN_PORT, accountId: options.accountId };
  const runtime = options.policy
    ? await startLocalRuntime({
        policy: options.policy,
        twinOptions,
        stage: LOCAL_STAGE,
        clock: options.clock ?? new SystemClock(),
      })
    : undefined;
  const twin =
    runtime?.twin ?? (await startTwin({ ...twinOptions, ...(options.clock ? { clock: options.clock } : {}) }));
  const sourceRegion = options.policy?.regions.sources[0] ?? DEFAULT_SOURCE_REGION;
  // Keys the policy names by alias can be made here; keys named by id or ARN are the user's to create (KMS API).
  const keys = (options.policy?.regions.dr ?? DEFAULT_DR_KEYS)
    .filter((dr) => dr.kmsKeyId.startsWith('alias/'))
    .map((dr) => ({
      region: dr.region,
      alias: dr.kmsKeyId,
      ...twin.seed.key(dr.region, { alias: dr.kmsKeyId, description: 'ami-dr DR key' }),
    }));
  const baseImage = twin.seed.image(sourceRegion, {
    name: 'base-image',
    sizeGiB: 8,
    tags: { Name: 'base-image', Family: 'base' },
  });
  const instanceId = twin.seed.instance(sourceRegion, { imageId: baseImage, tags: { Name: 'builder' } });

  out(`# ami-dr local twin (account ${twin.accountId}); export these to use it:`);
  out(`AWS_ENDPOINT_URL=${twin.endpoint}`);
  if (twin.s3Endpoint) out(`AWS_ENDPOINT_URL_S3=${twin.s3Endpoint}`);
  out(`AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=${sourceRegion}`);
  if (runtime) out(`AMI_DR_STAGE=${LOCAL_STAGE}`);
  out(
    `# seeded: ${keys.map((k) => `${k.alias} in ${k.region} (${k.keyId})`).join(', ')}; instance ${instanceId} (from ${baseImage}) in ${sourceRegion}`,
  );
  if (runtime)
    out(
      `# ami-dr runs here too: images created in ${options.policy?.regions.sources.join(', ')} are replicated to ${options.policy?.regions.dr.map((d) => d.region).join(', ')}`,
    );
  out('# Ctrl-C stops it.');
  options.onReady?.(twin);

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      options.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (options.signal?.aborted) stop();
    else options.signal?.addEventListener('abort', stop);
  });
  await (runtime ?? twin).stop();
  out('# twin stopped');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.AMI_DR_TWIN_PORT ?? DEFAULT_TWIN_PORT);
  process.exitCode = await runTwinCommand({ port });
}
