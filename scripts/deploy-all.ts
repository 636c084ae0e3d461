import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { REGION, type Policy } from '../lib/domain/policy.ts';
import { loadPolicyFile } from '../lib/policy-file.ts';

/**
 * `npm run deploy:all -- --stage prod [--home us-east-1] [--policy file.yml] [--dry-run] [-- <osls deploy options>]`
 * deploys one stack per region of the policy: every DR region of this account (its copy-completion rule), every
 * source region, and the home region (which runs the scheduled work for all of them; default the policy's first
 * source region). Each is `serverless deploy --region R --param home=H`, one after the other, stopping at the first
 * that fails.
 *
 * DR regions go first, so a source region's replications find the rule that wakes them. The home region goes last:
 * its scheduled readiness re-drives missing copies through each source region's replicate state machine, so those
 * stacks are deployed (and, on an upgrade, updated to the input the home stack's code sends) before the home stack's
 * schedules can call them. A failure in a replication stack leaves the home stack as it was.
 */

export interface DeployOptions {
  stage: string;
  /** Default: the policy's first source region. */
  home?: string;
  /** Passed on to every `serverless deploy`. */
  extra?: string[];
}

export interface DeployPlan {
  home: string;
  /** In deployment order: DR regions, source regions, the home region last. */
  regions: string[];
  commands: string[][];
}

export function deployPlan(policy: Readonly<Policy>, options: DeployOptions): DeployPlan {
  const home = options.home ?? policy.regions.sources[0]!;
  // A DR region in another account gets that account's stack (deploy/dr-account.yml), not this one.
  const ownDr = policy.regions.dr.filter((d) => !d.account).map((d) => d.region);
  const others = [...ownDr, ...policy.regions.sources];
  const regions = [...new Set(others.filter((r) => r !== home)), home];
  const commands = regions.map((region) => [
    'npx',
    'serverless',
    'deploy',
    '--stage',
    options.stage,
    '--region',
    region,
    '--param',
    `home=${home}`,
    ...(options.extra ?? []),
  ]);
  return { home, regions, commands };
}

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      stage: { type: 'string', default: 'dev' },
      home: { type: 'string' },
      policy: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (values.home !== undefined && !REGION.test(values.home)) {
    console.error(`deploy:all: --home ${values.home} is not a region`);
    return 2;
  }
  // The same policy file for the plan and for every deploy (policy-env.cjs reads AMI_DR_POLICY_FILE).
  const policyFile = resolve(values.policy ?? process.env.AMI_DR_POLICY_FILE ?? 'ami-dr.config.yml');
  const env = { ...process.env, AMI_DR_POLICY_FILE: policyFile };
  const plan = deployPlan(loadPolicyFile(policyFile), { stage: values.stage, home: values.home, extra: positionals });
  console.log(`home region ${plan.home}; stacks in ${plan.regions.join(', ')} (home last)`);
  for (const command of plan.commands) {
    console.log(command.join(' '));
    if (values['dry-run']) continue;
    const result = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit', env });
    if (result.status !== 0) {
      console.error(`deploy:all: stopped, ${command.join(' ')} failed`);
      return result.status ?? 1;
    }
  }
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    console.error(`deploy:all: ${(error as Error).message}`);
    process.exitCode = 2;
  }
}
