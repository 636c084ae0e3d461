import type { Command, CommandSpec } from './command.ts';
import { REPORT_FORMATS } from '../report/formats.ts';

/** A command as the CLI knows it before running it: its help and options, and how to load its implementation. */
export interface RegisteredCommand extends CommandSpec {
  load(): Promise<Command>;
}

/**
 * Every `ami-dr` command, in the order `--help` lists them. Only this table is loaded to print help or parse
 * arguments; a command's module (which imports the SDK, the workflows or the twin) is imported when it runs, so
 * `ami-dr --help` starts at once. Adding a command is adding a row here and a module in commands/.
 */
export const COMMANDS: readonly RegisteredCommand[] = [
  {
    name: 'validate',
    summary: 'check the policy file, and the policy against the account',
    usage: 'ami-dr validate [--policy file] [--local] [--json]',
    description:
      'Checks the policy file against its schema (every problem named by its field), then against the account: regions\n' +
      "exist and are enabled, each DR region's KMS key exists and is Enabled, and no in-scope source image is public\n" +
      '(its encrypted copies could not be). Exit status 0 when valid, 1 when the account does not fit the policy,\n' +
      '2 when the file itself is invalid.',
    options: {},
    examples: [
      'ami-dr validate',
      'ami-dr validate --policy prod.yml --json',
      'AWS_PROFILE=prod ami-dr validate --policy prod.yml',
    ],
    load: async () => (await import('./commands/validate.ts')).validateCommand,
  },
  {
    name: 'replicate',
    summary: 'start (or join) the replication of one image to every DR region',
    usage: 'ami-dr replicate <image-id> [--region source-region] [--wait]',
    description:
      'Starts the replication state machine for one source image, under the same deterministic execution name an\n' +
      'event would use: if that replication is already running, this joins it instead of starting a second one.\n' +
      '--wait follows it region by region until every copy is available or has failed (exit 1 if any failed).',
    options: {
      region: {
        type: 'string',
        valueName: 'region',
        description: "the image's (source) region (default AWS_REGION, else the policy's first source region)",
      },
      wait: {
        type: 'boolean',
        short: 'w',
        description: 'follow the replication until it ends, with per-region progress',
      },
    },
    positionals: ['image-id'],
    examples: [
      'ami-dr replicate ami-0123456789abcdef0',
      'ami-dr replicate ami-0123456789abcdef0 --region eu-central-1 --wait',
      'ami-dr replicate ami-0123456789abcdef0 --wait --json',
    ],
    load: async () => (await import('./commands/replicate.ts')).replicateCommand,
  },
  {
    name: 'readiness',
    summary: 'the DR readiness matrix: every in-scope image × DR region',
    usage: 'ami-dr readiness [--format table|json|markdown|html] [--output file] [--fail-on-gap] [--reconcile]',
    description:
      'For every in-scope source image and every DR region: ready, in progress, missing, failed (with the reason) or\n' +
      'drifted (key, tags, launch permissions or deprecation time not what the policy requires), with replication lag\n' +
      'and the age of the oldest image not ready everywhere. --reconcile also re-drives missing and failed images and\n' +
      'repairs drifted copies, as the scheduled function does.',
    options: {
      format: { type: 'string', valueName: REPORT_FORMATS.join('|'), description: 'output format (default table)' },
      output: {
        type: 'string',
        short: 'o',
        valueName: 'file',
        description: 'write the report to a file instead of stdout',
      },
      'fail-on-gap': { type: 'boolean', description: 'exit 1 when any image is not ready in every DR region' },
      reconcile: { type: 'boolean', description: 're-drive missing/failed images and repair drifted copies' },
    },
    examples: [
      'ami-dr readiness',
      'ami-dr readiness --fail-on-gap            # for CI and monitors',
      'ami-dr readiness --format html --output readiness.html',
      'ami-dr readiness --format markdown >> $GITHUB_STEP_SUMMARY',
      'ami-dr readiness --reconcile --json | jq .summary',
    ],
    load: async () => (await import('./commands/readiness.ts')).readinessCommand,
  },
  {
    name: 'retention',
    summary: 'plan or apply retention: deprecate and remove aged images, never ones in use',
    usage:
      'ami-dr retention plan [--region region] [--output plan.json] | apply [--region region | --plan plan.json] [--dry-run] [--time-budget duration]',
    description:
      'plan: what retention would do in each region, with a reason for every image (no changes).\n' +
      "apply: does it: deprecates, then deregisters aged images with their snapshots or S3 bundles, paced to EC2's\n" +
      'rate limits. Images that are retained, protected, in use, owned by AWS Backup or among the newest of their\n' +
      'family are kept. Without --region, every region of the policy (sources and DR) is processed: every region is\n' +
      'planned first, before anything changes, then each plan is applied, so apply does exactly what plan shows. A\n' +
      'copy whose source the same run removes is kept and goes in a later run (its reason says so).\n' +
      'plan --output writes the plan to a file; apply --plan applies exactly that plan: each action is checked\n' +
      'against the account as it is now and skipped (with the reason) when it is no longer safe; nothing is added.\n' +
      'A plan made for another account or another version of the policy is refused (exit 2).\n' +
      'The policy binds: with retention.dryRun: true, apply only plans; with retention.enabled: false, it does\n' +
      'nothing. Options can make a run safer, never less safe. Ctrl-C stops after the calls in flight and reports\n' +
      'what was done and what is left (exit 130); a second Ctrl-C stops at once.',
    options: {
      region: { type: 'string', valueName: 'region', description: 'one region only' },
      'dry-run': { type: 'boolean', description: 'with apply: plan and report, change nothing' },
      'time-budget': {
        type: 'string',
        valueName: 'duration',
        description: 'with apply: stop starting new work after this long (90s, 5m, 1h); the rest is left for next time',
      },
      all: { type: 'boolean', description: 'with plan: list kept images too (default: only the changes, and counts)' },
      output: { type: 'string', valueName: 'file', description: 'with plan: save the plan (JSON) for apply --plan' },
      plan: {
        type: 'string',
        valueName: 'file',
        description: 'with apply: apply this saved plan, re-checking every action; never more than it lists',
      },
    },
    positionals: ['plan|apply'],
    examples: [
      'ami-dr retention plan',
      'ami-dr retention plan --region us-east-1 --all',
      'ami-dr retention apply --region us-west-2',
      'ami-dr retention apply --dry-run --json',
      'ami-dr retention apply --time-budget 10m',
      'ami-dr retention plan --output plan.json && ami-dr retention apply --plan plan.json',
    ],
    stopsCleanly: true,
    load: async () => (await import('./commands/retention.ts')).retentionCommand,
  },
  {
    name: 'drill',
    summary: 'restore drills: launch the newest copy of each family in each DR region, check it boots, terminate it',
    usage: 'ami-dr drill [--local] [--json]',
    description:
      'For the newest available copy of each family in each DR region (as the consumer account of drill.consumerRoleArn\n' +
      'when the policy names one), launches one instance of the smallest type its architecture and boot mode allow (or\n' +
      "the policy's drill.instanceTypes), with no public IP, tagged ami-dr:drill, in drill.network's subnet and security\n" +
      'groups; waits for it to run with passing status checks, terminates it, and tags the copy with ami-dr:drilled-at\n' +
      'and ami-dr:drill-outcome. Failures are classified: key-access, launch-permission, capacity, status-check,\n' +
      'unsupported-type. At most drill.maxDrills drills and drill.maxInstanceMinutes instance-minutes per run. Drill\n' +
      'instances older than an hour (left by a run that died) are terminated first. Runs whether or not drill.enabled\n' +
      'turns the scheduled drills on. Exit status 1 when a drill failed; Ctrl-C terminates the drills in flight (130).',
    options: {},
    examples: ['ami-dr drill', 'ami-dr drill --json | jq .summary', 'ami-dr drill --local --json'],
    stopsCleanly: true,
    load: async () => (await import('./commands/drill.ts')).drillCommand,
  },
  {
    name: 'twin',
    summary: 'start the local twin of the AWS APIs ami-dr uses, and print its endpoint',
    usage: 'ami-dr twin [--port port]',
    description:
      'Runs the local twin (EC2, KMS, STS, SNS, Auto Scaling, Step Functions, S3) on 127.0.0.1 until Ctrl-C, in real\n' +
      'time, and ami-dr on it as if deployed under the policy (--policy, default ./ami-dr.config.yml; without that\n' +
      'file, the AWS APIs alone): images created through it are replicated, and `ami-dr replicate` and\n' +
      "`readiness --reconcile` find their state machine. Seeded with the policy's alias keys in its DR regions and an\n" +
      'instance to image. Prints the environment that points the AWS SDKs, the AWS CLI and ami-dr at it.',
    options: {
      port: { type: 'string', valueName: 'port', description: 'port to listen on (default 4599; 0 picks a free one)' },
    },
    examples: [
      'ami-dr twin',
      'ami-dr twin --port 0 --policy prod.yml',
      'ami-dr readiness   # in another shell, with the printed lines exported',
    ],
    // Ctrl-C is how the twin is stopped: it ends with exit 0.
    stopsCleanly: true,
    load: async () => (await import('./commands/twin.ts')).twinCommand,
  },
  {
    name: 'demo',
    summary: 'the whole lifecycle on a local twin of AWS, in under a minute',
    usage: 'ami-dr demo [--policy file]',
    description:
      'Starts a local twin of AWS on a virtual clock, seeds a realistic account, builds new images and shows the\n' +
      'event-driven replication to every DR region as it happens, prints the readiness matrix, loses an event on\n' +
      'purpose and shows reconciliation repair it, then plans and applies retention and prints its report.\n' +
      'Needs no AWS account and no network.',
    options: {},
    examples: ['ami-dr demo', 'NO_COLOR=1 ami-dr demo > demo.log', 'ami-dr demo --json | jq .readiness.after'],
    load: async () => (await import('./commands/demo.ts')).demoCommand,
  },
];
