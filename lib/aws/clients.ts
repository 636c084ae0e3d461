import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { STSClient } from '@aws-sdk/client-sts';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';

/**
 * One place that makes SDK clients: one per service and region, created on first use and reused for the
 * life of the process (a Lambda container, a CLI run). Endpoints come from `AWS_ENDPOINT_URL` /
 * `AWS_ENDPOINT_URL_<SERVICE>` as the SDK reads them, so the same code talks to AWS or to the local twin.
 */
export interface Clients {
  ec2(region: string): EC2Client;
  kms(region: string): KMSClient;
  s3(region: string): S3Client;
  sfn(region: string): SFNClient;
  sns(region: string): SNSClient;
  sts(region: string): STSClient;
  autoScaling(region: string): AutoScalingClient;
}

export interface ClientOptions {
  /** Overrides every service's endpoint (tests hand in the twin's). */
  endpoint?: string;
  /** Overrides the S3 endpoint (the twin's S3 listens on its own port). */
  s3Endpoint?: string;
  maxAttempts?: number;
  /** Static credentials (the local twin tells callers apart by access key id); default: the SDK's chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

type Ctor<T> = new (config: Record<string, unknown>) => T;

export function createClients(options: ClientOptions = {}): Clients {
  const cache = new Map<string, unknown>();
  const make = <T>(service: string, ctor: Ctor<T>, region: string, extra: Record<string, unknown> = {}): T => {
    const key = `${service}:${region}`;
    let client = cache.get(key) as T | undefined;
    if (!client) {
      client = new ctor({
        region,
        retryMode: 'adaptive',
        maxAttempts: options.maxAttempts ?? 8,
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
        ...extra,
      });
      cache.set(key, client);
    }
    return client;
  };
  return {
    ec2: (region) => make('ec2', EC2Client, region),
    kms: (region) => make('kms', KMSClient, region),
    s3: (region) =>
      make('s3', S3Client, region, {
        forcePathStyle: Boolean(options.s3Endpoint ?? options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(options.s3Endpoint ? { endpoint: options.s3Endpoint } : {}),
      }),
    sfn: (region) => make('sfn', SFNClient, region),
    sns: (region) => make('sns', SNSClient, region),
    sts: (region) => make('sts', STSClient, region),
    autoScaling: (region) => make('autoscaling', AutoScalingClient, region),
  };
}

let defaults: Clients | undefined;

/** The process-wide clients, made once (module scope in a Lambda container). */
export function defaultClients(): Clients {
  defaults ??= createClients();
  return defaults;
}
