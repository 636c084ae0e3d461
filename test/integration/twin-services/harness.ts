import { startHttpServer, jsonError, type ServiceHandler, type TwinRequest } from '../../../local/http.ts';
import { ManualClock } from '../../../local/clock.ts';
import { createKmsService } from '../../../local/kms.ts';
import { TwinState } from '../../../local/state.ts';
import { createStsService } from '../../../local/sts.ts';
import { SnsState, createSnsService } from '../../../local/sns.ts';
import { createAutoScalingService } from '../../../local/autoscaling.ts';
import { createSeeder, type Seeder } from '../../../local/seed.ts';
import { createEc2ReferenceActions } from '../../../local/ec2-references.ts';
import type { Ec2Context } from '../../../local/ec2-context.ts';
import { Ec2Params } from '../../../local/ec2-params.ts';
import { errorCode } from '../../../local/ec2-errors.ts';
import { ec2ErrorResponse, ec2Response } from '../../../local/ec2-xml.ts';
import { createClients, type Clients } from '../../../lib/aws/clients.ts';

export interface Harness {
  endpoint: string;
  clients: Clients;
  clock: ManualClock;
  accountId: string;
  state: TwinState & { sns: SnsState };
  seed: Seeder;
  stop(): Promise<void>;
}

/** The services under test behind the twin's HTTP front door, with a clock the test drives. */
export async function startHarness(): Promise<Harness> {
  const accountId = '000000000000';
  const clock = new ManualClock();
  const state = Object.assign(new TwinState(accountId), { sns: new SnsState() });
  const services: Record<string, ServiceHandler> = {
    kms: createKmsService(state, { accountId, clock }),
    sts: createStsService({ accountId }),
    sns: createSnsService(state, { accountId, clock }),
    autoscaling: createAutoScalingService(state, { accountId }),
    ec2: ec2Service(state, accountId),
  };
  const server = await startHttpServer(async (request: TwinRequest) => {
    const handler = services[request.service];
    if (!handler) return jsonError(400, 'UnknownService', request.service);
    return handler(request);
  });
  return { endpoint: server.endpoint, clients: createClients({ endpoint: server.endpoint, maxAttempts: 1 }), clock, accountId, state, seed: createSeeder(state, clock), stop: () => server.stop() };
}

/** Dispatches the reference actions the way the twin's EC2 service does (only what they read of the context). */
function ec2Service(state: TwinState, accountId: string): ServiceHandler {
  const actions = createEc2ReferenceActions();
  return (request) => {
    const action = actions[request.action];
    if (!action) return ec2ErrorResponse('InvalidAction', request.action, request.requestId);
    const ctx = { state, accountId, region: request.region, requestId: request.requestId, params: new Ec2Params(request.params) } as unknown as Ec2Context;
    try {
      return ec2Response(request.action, request.requestId, action(ctx));
    } catch (error) {
      const known = errorCode(error);
      if (!known) throw error;
      return ec2ErrorResponse(known.code, known.message, request.requestId, known.status);
    }
  };
}
