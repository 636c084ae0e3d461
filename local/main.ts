import { pathToFileURL } from 'node:url';
import { startTwin, type Twin } from './twin.ts';

/**
 * `npm run twin` / `ami-dr twin`: the local twin for people, on a fixed port with real time, seeded with what
 * ami-dr needs to do anything at all (its KMS key in each default DR region, an instance to image in the
 * source region). Prints the environment to point SDKs and the AWS CLI at it, and runs until interrupted.
 */
export const DEFAULT_TWIN_PORT = 4599;
const SOURCE_REGION = 'us-east-1';
const DR_REGIONS = ['us-west-2', 'eu-west-1'];

export interface TwinCommandOptions {
  port?: number;
  accountId?: string;
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
  const twin = await startTwin({ port: options.port ?? DEFAULT_TWIN_PORT, accountId: options.accountId });
  const keys = DR_REGIONS.map((region) => ({ region, ...twin.seed.key(region, { alias: 'ami-dr', description: 'ami-dr DR key' }) }));
  const baseImage = twin.seed.image(SOURCE_REGION, { name: 'base-image', sizeGiB: 8, tags: { Name: 'base-image' } });
  const instanceId = twin.seed.instance(SOURCE_REGION, { imageId: baseImage, tags: { Name: 'builder' } });

  out(`# ami-dr local twin (account ${twin.accountId}); export these to use it:`);
  out(`AWS_ENDPOINT_URL=${twin.endpoint}`);
  if (twin.s3Endpoint) out(`AWS_ENDPOINT_URL_S3=${twin.s3Endpoint}`);
  out('AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1');
  out(`# seeded: alias/ami-dr in ${keys.map((k) => `${k.region} (${k.keyId})`).join(', ')}; instance ${instanceId} (from ${baseImage}) in ${SOURCE_REGION}`);
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
  await twin.stop();
  out('# twin stopped');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.AMI_DR_TWIN_PORT ?? DEFAULT_TWIN_PORT);
  process.exitCode = await runTwinCommand({ port });
}
