import { taskClients, type Clients } from './aws/clients.ts';
import { policyMemberClients, type ClientsFor } from './aws/member-clients.ts';
import { parsePolicy, type Policy } from './domain/policy.ts';

/**
 * The policy a Lambda runs with, parsed once at cold start from `AMI_DR_POLICY`, where serverless.yml puts it as
 * JSON at package time (from ami-dr.config.yml, or the file `AMI_DR_POLICY_FILE` names). Lambdas read JSON only,
 * so no YAML parser ships in their bundles; the CLI reads YAML files with lib/policy-file.ts.
 */
export function loadPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): Readonly<Policy> {
  if (!env.AMI_DR_POLICY) throw new Error('no policy: AMI_DR_POLICY (the policy as JSON) is not set');
  let document: unknown;
  try {
    document = JSON.parse(env.AMI_DR_POLICY);
  } catch (cause) {
    throw new Error(`AMI_DR_POLICY is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return parsePolicy(document, 'AMI_DR_POLICY');
}

/**
 * What every replication task works with: its role's clients, the policy, and a member account's clients for a
 * source in that account (organization reach: its EC2 calls are made there, through the member role).
 */
export function replicationTaskDeps(env: NodeJS.ProcessEnv = process.env): {
  clients: Clients;
  policy: Readonly<Policy>;
  clientsFor?: ClientsFor;
} {
  const clients = taskClients();
  const policy = loadPolicyFromEnv(env);
  const clientsFor = policyMemberClients(clients, policy);
  return { clients, policy, ...(clientsFor ? { clientsFor } : {}) };
}
