import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { RbinClient } from '@aws-sdk/client-rbin';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { STSClient } from '@aws-sdk/client-sts';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';

/**
 * One place that makes SDK clients: one per service and region, created on first use and reused for the life of
 * the process (a Lambda container, a CLI run). Endpoints come from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
 * as the SDK reads them, or from `endpoint`, so the same code talks to AWS or to the local twin.
 *
 * Callers ask for a service with its own function (`ec2Client(clients, region)`) rather than a method on one
 * object: a bundle then holds only the SDK clients its code calls (the packages are side-effect free, so esbuild
 * drops the rest), where an object of seven methods would carry all seven clients into every Lambda.
 */
export interface Clients {
  readonly options: Readonly<ClientOptions>;
  /** The cached client of this class for the region, made on first use with `extra` config. */
  get<T>(Client: new (config: Record<string, unknown>) => T, region: string, extra?: Record<string, unknown>): T;
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

export function createClients(options: ClientOptions = {}): Clients {
  const cache = new Map<unknown, Map<string, unknown>>();
  return {
    options,
    get(Client, region, extra = {}) {
      let byRegion = cache.get(Client);
      if (!byRegion) cache.set(Client, (byRegion = new Map()));
      let client = byRegion.get(region) as InstanceType<typeof Client> | undefined;
      if (!client) {
        client = new Client({
          region,
          retryMode: 'adaptive',
          maxAttempts: options.maxAttempts ?? 8,
          ...(options.endpoint ? { endpoint: options.endpoint } : {}),
          ...(options.credentials ? { credentials: options.credentials } : {}),
          ...extra,
        });
        byRegion.set(region, client);
      }
      return client;
    },
  };
}

let defaults: Clients | undefined;

/** The process-wide clients, made once (module scope in a Lambda container). */
export function defaultClients(): Clients {
  defaults ??= createClients();
  return defaults;
}

/**
 * SDK attempts per call inside a state machine task. The state machine retries a task's throttling and Lambda
 * errors with its own back-off (up to 8 attempts); SDK retries inside the task would multiply with those (8 × 8 =
 * 64 calls for one step), so a task's calls try twice and leave the rest to the state machine.
 */
export const TASK_MAX_ATTEMPTS = 2;

/** The process-wide clients of a state machine task (see TASK_MAX_ATTEMPTS). */
let tasks: Clients | undefined;
export function taskClients(): Clients {
  tasks ??= createClients({ maxAttempts: TASK_MAX_ATTEMPTS });
  return tasks;
}

export const ec2Client = (clients: Clients, region: string): EC2Client => clients.get(EC2Client, region);
export const dynamoDbClient = (clients: Clients, region: string): DynamoDBClient => clients.get(DynamoDBClient, region);
export const kmsClient = (clients: Clients, region: string): KMSClient => clients.get(KMSClient, region);
export const sfnClient = (clients: Clients, region: string): SFNClient => clients.get(SFNClient, region);
export const snsClient = (clients: Clients, region: string): SNSClient => clients.get(SNSClient, region);
export const stsClient = (clients: Clients, region: string): STSClient => clients.get(STSClient, region);
export const rbinClient = (clients: Clients, region: string): RbinClient => clients.get(RbinClient, region);
export const organizationsClient = (clients: Clients, region: string): OrganizationsClient =>
  clients.get(OrganizationsClient, region);
export const autoScalingClient = (clients: Clients, region: string): AutoScalingClient =>
  clients.get(AutoScalingClient, region);

export function s3Client(clients: Clients, region: string): S3Client {
  const { s3Endpoint, endpoint } = clients.options;
  const local = s3Endpoint ?? endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return clients.get(S3Client, region, {
    // A local S3 has no bucket host names; checksums only where S3 requires them, or uploads get aws-chunked framing.
    forcePathStyle: Boolean(local),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(s3Endpoint ? { endpoint: s3Endpoint } : {}),
  });
}

/**
 * The same clients, each `send` given `abortSignal` (unless the call names its own): a call in flight, the SDK's
 * retry back-off between attempts and its client-side rate limiter's wait all end when the signal fires (the SDK
 * races them against it). A run bounded by a deadline hands this to everything it calls. The clients stay
 * instances of their classes, as the SDK's paginators check.
 */
export function withAbortSignal(clients: Clients, abortSignal: AbortSignal): Clients {
  const wrapped = new Map<unknown, unknown>();
  return {
    options: clients.options,
    get(Client, region, extra) {
      const client = clients.get(Client, region, extra);
      let proxy = wrapped.get(client) as typeof client | undefined;
      if (!proxy) {
        proxy = new Proxy(client as object, {
          get(target, property, receiver) {
            const value: unknown = Reflect.get(target, property, receiver);
            if (property !== 'send' || typeof value !== 'function') return value;
            return (command: unknown, options?: Record<string, unknown>) =>
              value.call(target, command, { abortSignal, ...options });
          },
        }) as typeof client;
        wrapped.set(client, proxy);
      }
      return proxy;
    },
  };
}
