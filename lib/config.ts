import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parsePolicy, type Policy } from './domain/policy.ts';

/**
 * The policy a Lambda runs with, parsed once at cold start: `AMI_DR_POLICY` holds it as JSON (serverless.yml
 * puts it there at package time, from ami-dr.config.yml), or `AMI_DR_POLICY_FILE` names a YAML file.
 */
export function loadPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): Readonly<Policy> {
  if (env.AMI_DR_POLICY) return parsePolicy(parseJson(env.AMI_DR_POLICY), 'AMI_DR_POLICY');
  if (env.AMI_DR_POLICY_FILE) return loadPolicyFile(env.AMI_DR_POLICY_FILE);
  throw new Error('no policy: set AMI_DR_POLICY (JSON) or AMI_DR_POLICY_FILE (a YAML file)');
}

export function loadPolicyFile(path: string): Readonly<Policy> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new Error(`cannot read policy file ${path}: ${(cause as Error).message}`, { cause });
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (cause) {
    throw new Error(`policy file ${path} is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  return parsePolicy(document, path);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new Error(`AMI_DR_POLICY is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}
