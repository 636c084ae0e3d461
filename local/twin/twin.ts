import { createAutoScalingService } from './autoscaling.ts';
import { isManualClock, SystemClock, type Clock } from './clock.ts';
import type { Ec2Runtime, Ec2Settings } from './ec2-context.ts';
import { Cursors } from './ec2-pages.ts';
import { createDynamoDbService, DynamoDbState } from './dynamodb.ts';
import { createEc2Service } from './ec2.ts';
import { EventBus } from './events.ts';
import { jsonError, startHttpServer, type ServiceHandler, type TwinRequest, type TwinResponse } from './http.ts';
import { denialMessage, Iam } from './iam.ts';
import { DENIAL, serviceRequests } from './iam-requests.ts';
import { accessKeyIdOf, resolveIdentity, type CallerIdentity } from './identity.ts';
import { keyAllows } from './kms-access.ts';
import { createKmsService } from './kms.ts';
import { queryError } from './query-protocol.ts';
import { bundleClient, copyBundle, startS3, type S3Server } from './s3.ts';
import { createRbinService } from './rbin.ts';
import { Lifecycle } from './lifecycle.ts';
import { createSeeder, type Seeder } from './seed.ts';
import { createSnsService, SnsState } from './sns.ts';
import { TwinState } from './state.ts';
import { createStsService } from './sts.ts';
import { createOrganizationsService, type TwinOrganization } from './organizations.ts';
import { Throttler, type ThrottleSettings } from './throttle.ts';

/**
 * The local twin of the AWS APIs ami-dr uses: one HTTP endpoint on 127.0.0.1 serving EC2, KMS, STS, SNS, Auto
 * Scaling, Recycle Bin (and whatever else is registered, e.g. Step Functions), over one multi-region account, with a
 * clock tests can drive, fault injection and an event bus.
 */
export interface TwinOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  accountId?: string;
  /** Default: real time. Pass a ManualClock to drive time from a test. */
  clock?: Clock;
  /** Twin time a CopyImage takes (default 60 s). */
  copyDurationMs?: number;
  /** Twin time a CreateImage takes (default 5 s). */
  createDurationMs?: number;
  /** Concurrent copies per destination region (default 100, AWS's quota). */
  copyQuota?: number;
  throttling?: ThrottleSettings;
  /** Start S3 (s3rver, its own port: `s3Endpoint`) beside the API endpoint (default true). */
  s3?: boolean;
  /** Access key id -> caller ARN; see identity.ts for the defaults. */
  identities?: Record<string, string>;
  /**
   * Several accounts (accounts.ts): the access-key map every account's twin shares (used as is, not copied), so a
   * session STS hands out in one account is known to all; `peers` answers for another account's callers (a call
   * signed with a member's credentials is that member's, as on AWS); `organization` serves Organizations and
   * decides which member roles STS AssumeRole may hand out.
   */
  accounts?: {
    identities: Record<string, string>;
    peers: ReadonlyMap<string, (request: TwinRequest) => Promise<TwinResponse>>;
    organization?: TwinOrganization;
  };
}

export interface TwinFaults {
  /** Turns EC2 throttling on/off; `scale` multiplies AWS's bucket sizes and refill rates. */
  throttling(enabled: boolean, scale?: number): void;
  copyQuota(n: number): void;
  copyDuration(ms: number): void;
  /** Copies into `region` that complete from now on end `failed` with this reason. */
  failCopies(region: string, reason?: string): void;
  /** Instances launched in `region` from now on run, but their instance status check fails (impaired). */
  failBoots(region: string, reason?: string): void;
  /** RunInstances in `region` fails with InsufficientInstanceCapacity from now on. */
  noCapacity(region: string): void;
  /** A share (0-1) of this EC2 action's calls fail with HTTP 503 `Unavailable`, evenly spread; 0 stops it. */
  unavailable(action: string, rate: number): void;
  /** DeregisterImage fails to delete snapshots (see Ec2Settings.snapshotDeleteFault); probability 0 turns it off. */
  snapshotDeletions(mode: 'internal-error' | 'omit-results', probability: number, random?: () => number): void;
  /** S3 DeleteObject(s) answer 500 with this probability; 0 turns it off. */
  s3Deletes(probability: number, random?: () => number): void;
  /** Back to the options the twin was started with. */
  clear(): void;
}

/** Another account whose resources the twin holds (a DR account): callers signing as its principals act in it. */
export interface TwinAccount {
  accountId: string;
  state: TwinState;
  seed: Seeder;
}

export interface Twin {
  endpoint: string;
  s3Endpoint?: string;
  accountId: string;
  clock: Clock;
  state: TwinState;
  seed: Seeder;
  faults: TwinFaults;
  events: EventBus;
  sns: SnsState;
  /** The roles callers sign as (see iam.ts): attach one to restrict a caller's access key to its policy. */
  iam: Iam;
  /** DynamoDB tables (create them as a deployment would: `dynamodb.createTable(region, name, hashKey)`). */
  dynamodb: DynamoDbState;
  /**
   * Holds another account's resources from now on (idempotent): callers whose credentials map to that account
   * (sessions of its roles, via STS AssumeRole) see and make its images, snapshots, keys and rules, and CopyImage
   * reads images other accounts shared with it. Its IAM is modelled: only roles defined on `iam` can be assumed.
   */
  addAccount(accountId: string): TwinAccount;
  /** When the next scheduled state change (a copy finishing, ...) is due, in twin time; for virtual time. */
  nextDue(): number | undefined;
  /** Serves another service (by SigV4 signing name, e.g. `states`) on the same endpoint. */
  register(service: string, handler: ServiceHandler): void;
  /** API calls this twin has answered or passed on to another account's twin (benches count calls with it). */
  requests(): number;
  /** The same, of one service in one region (its SigV4 signing name and region: `ec2`, `us-east-1`). */
  requestsTo(service: string, region: string): number;
  /** Answers one request as the HTTP endpoint would (another account's twin forwards its members' calls here). */
  handle(request: TwinRequest): Promise<TwinResponse>;
  /** Applies every transition due at the clock's current time and waits until their events are delivered. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULTS = { accountId: '000000000000', copyDurationMs: 60_000, createDurationMs: 5_000, copyQuota: 100 };
/** With real time, due transitions are applied at least this often even when nobody calls. */
const TICK_MS = 250;

export async function startTwin(options: TwinOptions = {}): Promise<Twin> {
  const accountId = options.accountId ?? DEFAULTS.accountId;
  const clock = options.clock ?? new SystemClock();
  const state = new TwinState(accountId, () => clock.now());
  const events = new EventBus();
  const lifecycle = new Lifecycle(clock, events, accountId);
  const initial: Ec2Settings = {
    copyDurationMs: options.copyDurationMs ?? DEFAULTS.copyDurationMs,
    createDurationMs: options.createDurationMs ?? DEFAULTS.createDurationMs,
    copyQuota: options.copyQuota ?? DEFAULTS.copyQuota,
    failCopies: new Map(),
    failBoots: new Map(),
    noCapacity: new Set(),
    unavailable: new Map(),
  };
  const settings: Ec2Settings = {
    ...initial,
    failCopies: new Map(),
    failBoots: new Map(),
    noCapacity: new Set(),
    unavailable: new Map(),
  };
  const initialThrottling = { enabled: options.throttling?.enabled ?? false, scale: options.throttling?.scale ?? 1 };
  const throttler = new Throttler(clock, initialThrottling);
  const settleNow = () => lifecycle.settle();
  const sns = new SnsState();
  const identities: Record<string, string> = options.accounts?.identities ?? { ...options.identities };
  const organization = options.accounts?.organization;
  const iam = new Iam(identities);
  const dynamodb = new DynamoDbState(accountId);

  const accounts = new Map<string, TwinState>([[accountId, state]]);
  const ec2Runtime: Ec2Runtime = {
    state,
    clock,
    events,
    lifecycle,
    settings,
    cursors: new Cursors(),
    accountId,
    accounts,
  };
  const services = new Map<string, ServiceHandler>();
  services.set('ec2', createEc2Service(ec2Runtime, { throttler, identities, iam, settle: settleNow }));
  services.set('kms', createKmsService(state, { accountId, clock }));
  services.set(
    'sts',
    createStsService({
      accountId,
      identities,
      iam,
      authorize: organization
        ? (caller, roleArn, externalId) => organization.assumeRoleDenial(caller, roleArn, externalId)
        : undefined,
    }),
  );
  // An account in no organization answers AWSOrganizationsNotInUseException, as AWS does.
  services.set(
    'organizations',
    createOrganizationsService({ organization: () => organization, accountId, identities }),
  );
  services.set('sns', createSnsService({ sns }, { accountId, clock }));
  services.set('dynamodb', createDynamoDbService(dynamodb));
  services.set('autoscaling', createAutoScalingService(state, { accountId }));
  services.set('rbin', createRbinService({ accountId }));

  /** Other accounts' services: EC2, KMS and Recycle Bin over their own state (one clock, bus and lifecycle). */
  const members = new Map<string, { account: TwinAccount; services: Map<string, ServiceHandler> }>();
  const addAccount = (id: string): TwinAccount => {
    const existing = members.get(id);
    if (existing) return existing.account;
    const memberState = new TwinState(id, () => clock.now(), state);
    accounts.set(id, memberState);
    iam.modelAccount(id);
    const runtime: Ec2Runtime = { ...ec2Runtime, state: memberState, accountId: id, cursors: new Cursors() };
    const memberServices = new Map<string, ServiceHandler>([
      ['ec2', createEc2Service(runtime, { throttler, identities, iam, settle: settleNow })],
      ['kms', createKmsService(memberState, { accountId: id, clock })],
      ['rbin', createRbinService({ accountId: id })],
    ]);
    const account = { accountId: id, state: memberState, seed: createSeeder(memberState, clock) };
    members.set(id, { account, services: memberServices });
    return account;
  };

  let served = 0;
  const servedTo = new Map<string, number>();
  /**
   * A call is its signer's: an organization peer's twin answers for a peer account's keys (Organizations excepted:
   * it is global, the management account answers), a member account modelled here (`addAccount`) is served from its
   * own state, anything else by this account.
   */
  const route = async (request: TwinRequest): Promise<TwinResponse> => {
    served++;
    const where = `${request.service} ${request.region}`;
    servedTo.set(where, (servedTo.get(where) ?? 0) + 1);
    const authorization = request.headers.authorization;
    const caller = resolveIdentity(
      accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
      accountId,
      identities,
    );
    const peer = caller.accountId !== accountId ? options.accounts?.peers.get(caller.accountId) : undefined;
    if (peer && request.service !== 'organizations') return peer(request);
    const member = members.get(caller.accountId);
    const handler = member?.services.get(request.service) ?? services.get(request.service);
    if (!handler) {
      const known = [...services.keys()].sort().join(', ');
      const message = request.service
        ? `The local twin does not serve '${request.service}' (it serves: ${known}).`
        : 'The request is not signed with AWS Signature Version 4; the twin routes by the credential scope.';
      return jsonError(400, 'UnknownService', message);
    }
    const denied =
      request.service === 'ec2' // EC2 authorizes inside, where it also answers for the calls behind a call
        ? undefined
        : iam.denied(caller.accessKeyId, serviceRequests(request, member?.account.state ?? state));
    if (!denied && request.service === 'kms' && !member) {
      const refused = foreignKeyUse(request, caller, state, accountId);
      if (refused) return jsonError(400, 'AccessDeniedException', refused);
    }
    if (denied) {
      const { code, status } = DENIAL[request.service] ?? { code: 'AccessDenied', status: 403 };
      const message = denialMessage(denied.arn, denied.request);
      return request.protocol !== 'query'
        ? jsonError(status, code, message)
        : queryError(status, code, message, request.requestId);
    }
    return handler(request);
  };
  const http = await startHttpServer(route, options.port ?? 0);
  let s3: S3Server | undefined;
  try {
    s3 =
      options.s3 === false
        ? undefined
        : await startS3({
            accountId,
            authorize: (accessKeyId, requests) => {
              const denied = iam.denied(accessKeyId, requests);
              return denied && denialMessage(denied.arn, denied.request);
            },
          });
  } catch (error) {
    await http.stop();
    throw error;
  }

  // CopyImage of an instance-store image writes its bundle to the copy's bucket, in the background as AWS does.
  const bundleCopies = new Set<Promise<unknown>>();
  if (s3) {
    const s3Client = bundleClient(s3.endpoint);
    ec2Runtime.copyBundle = (from, to) => {
      const copy = copyBundle(s3Client, from, to).finally(() => bundleCopies.delete(copy));
      bundleCopies.add(copy);
    };
  }

  const stopClock = isManualClock(clock) ? clock.onChange(settleNow) : undefined;
  const timer = isManualClock(clock) ? undefined : setInterval(settleNow, TICK_MS);
  timer?.unref();

  const faults: TwinFaults = {
    throttling: (enabled, scale) => throttler.configure(enabled, scale),
    copyQuota: (n) => {
      settings.copyQuota = n;
    },
    copyDuration: (ms) => {
      settings.copyDurationMs = ms;
    },
    failCopies: (region, reason = 'The copy failed (injected fault).') => {
      settings.failCopies.set(region, reason);
    },
    failBoots: (region, reason = 'Instance reachability check failed (injected fault).') => {
      settings.failBoots.set(region, reason);
    },
    noCapacity: (region) => {
      settings.noCapacity.add(region);
    },
    unavailable: (action, rate) => {
      if (!(rate >= 0 && rate <= 1)) throw new RangeError(`unavailable rate must be within 0-1, got ${rate}`);
      if (rate === 0) settings.unavailable.delete(action);
      else settings.unavailable.set(action, { rate, calls: 0 });
    },
    snapshotDeletions: (mode, probability, random = Math.random) => {
      settings.snapshotDeleteFault = probability > 0 ? { mode, probability, random } : undefined;
    },
    s3Deletes: (probability, random) => s3?.faults.failDeletes(probability, random),
    clear: () => {
      settings.snapshotDeleteFault = undefined;
      s3?.faults.failDeletes(0);
      settings.copyDurationMs = initial.copyDurationMs;
      settings.createDurationMs = initial.createDurationMs;
      settings.copyQuota = initial.copyQuota;
      settings.failCopies.clear();
      settings.failBoots.clear();
      settings.noCapacity.clear();
      settings.unavailable.clear();
      throttler.configure(initialThrottling.enabled, initialThrottling.scale);
    },
  };

  return {
    endpoint: http.endpoint,
    s3Endpoint: s3?.endpoint,
    accountId,
    clock,
    state,
    seed: createSeeder(state, clock),
    faults,
    events,
    sns,
    iam,
    dynamodb,
    addAccount,
    nextDue: () => lifecycle.nextDue(),
    handle: route,
    requests: () => served,
    requestsTo: (service, region) => servedTo.get(`${service} ${region}`) ?? 0,
    register: (service, handler) => {
      services.set(service, handler);
    },
    settle: async () => {
      settleNow();
      await Promise.allSettled([...bundleCopies]);
      await events.flush();
    },
    stop: async () => {
      stopClock?.();
      if (timer) clearInterval(timer);
      await Promise.all([http.stop(), s3?.stop()]);
      await events.flush();
    },
  };
}

/**
 * Another account's principal using one of the twin's keys (named by ARN): the key policy or a grant must allow it,
 * else KMS answers AccessDeniedException. Returns the message, or undefined when allowed or not such a call.
 */
function foreignKeyUse(
  request: TwinRequest,
  caller: CallerIdentity,
  state: TwinState,
  accountId: string,
): string | undefined {
  if (caller.accountId === accountId) return undefined;
  const ref = request.json.KeyId;
  if (typeof ref !== 'string') return undefined;
  const resolved = state.resolve(request.region, ref);
  const key = resolved && state.region(request.region).keys.get(resolved.keyId);
  if (!key) return undefined;
  const action = `kms:${request.action}`;
  const principal = { accountId: caller.accountId, arns: [caller.arn, ...(caller.roleArn ? [caller.roleArn] : [])] };
  if (keyAllows(key, accountId, principal, action)) return undefined;
  return `User: ${caller.arn} is not authorized to perform: ${action} on resource: ${key.arn} because no resource-based policy allows the ${action} action`;
}
