import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensurePackaged, lambdaResources, listedFunctions, ROOT, type Template } from './packaged.ts';

/**
 * serverless.yml's roles checked against the code. What a function can call is read from esbuild's metafile of
 * the same tree-shaken build serverless-esbuild makes: an SDK command module that survives in the bundle is an API
 * the function may call; one shaken out is not. Each role must grant exactly those (plus what the runtime and EBS
 * use on its behalf), and each lib module that calls AWS must say so in `REQUIRED_PERMISSIONS`.
 */

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

const SERVICE_PREFIX: Record<string, string> = {
  dynamodb: 'dynamodb',
  ec2: 'ec2',
  kms: 'kms',
  s3: 's3',
  sfn: 'states',
  sns: 'sns',
  sts: 'sts',
  'auto-scaling': 'autoscaling',
  rbin: 'rbin',
  organizations: 'organizations',
};
/** Operations whose IAM action is named differently; `null`: needs no permission. */
const ACTION_OF: Record<string, string | null> = {
  'sts:GetCallerIdentity': null,
  // S3 Express sessions: every S3 client carries the command, general-purpose buckets never use it.
  's3:CreateSession': null,
  // Endpoint discovery: every DynamoDB client carries the command, it is off unless configured (ami-dr never does).
  'dynamodb:DescribeEndpoints': null,
  's3:HeadObject': 's3:GetObject',
  's3:DeleteObjects': 's3:DeleteObject',
  's3:ListObjectsV2': 's3:ListBucket',
  's3:HeadBucket': 's3:ListBucket',
};
/** Logs are written by the runtime, KMS is used by EBS on the role's behalf, SQS is Lambda's failure destination. */
const IMPLICIT = /^(logs|kms|sqs):/;
/** Actions EC2 authorizes as part of another call: tags given at creation, snapshots deleted with their image. */
const IMPLIED: Record<string, string[]> = {
  // Tags at creation; an instance-store source's bundle read and the copy's bundle written (copy-ami-permissions).
  'ec2:CopyImage': [
    'ec2:CreateTags',
    's3:CreateBucket',
    's3:PutBucketOwnershipControls',
    's3:GetBucketAcl',
    's3:ListAllMyBuckets',
    's3:GetObject',
    's3:PutObject',
    's3:PutObjectAcl',
  ],
  'ec2:DeregisterImage': ['ec2:DeleteSnapshot'],
  // Tags at launch (TagSpecifications): the drill instances' ami-dr:drill tag.
  'ec2:RunInstances': ['ec2:CreateTags'],
  // The references EC2 looks up as the caller (AmazonEC2ImageReferencesAccessPolicy).
  'ec2:DescribeImageReferences': [
    'ssm:DescribeParameters',
    'ssm:GetParameters',
    'imagebuilder:ListImageRecipes',
    'imagebuilder:ListContainerRecipes',
    'imagebuilder:GetContainerRecipe',
  ],
};
const EBS_COPY_KEY_ACTIONS = [
  'kms:CreateGrant',
  'kms:Decrypt',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
];

const COMMAND_FILE = /node_modules\/@aws-sdk\/client-([a-z0-9-]+)\/dist-es\/commands\/(\w+)Command\.js$/;
/**
 * A client nested in another package's node_modules is that package's own: @aws-sdk/client-rbin comes from an older
 * SDK line that carries its own credential chain (STS, SSO OIDC clients), which fetches credentials and makes no
 * call with the role.
 */
const NESTED = /node_modules\/.+\/node_modules\//;

/** Clients only credential providers use (SSO's GetRoleCredentials): they fetch credentials, not calls of the role. */
const CREDENTIAL_CHAIN = new Set(['sso', 'sso-oidc']);

function iamAction(service: string, operation: string): string | null {
  if (CREDENTIAL_CHAIN.has(service)) return null;
  const prefix = SERVICE_PREFIX[service];
  if (!prefix) throw new Error(`no IAM prefix known for @aws-sdk/client-${service}`);
  const action = `${prefix}:${operation}`;
  return action in ACTION_OF ? ACTION_OF[action]! : action;
}

let template: Template;
/** Per function: the IAM actions its bundle can call, and the lib modules in it. */
const bundles = new Map<string, { actions: string[]; modules: string[] }>();

beforeAll(async () => {
  template = await ensurePackaged();
  const functions = listedFunctions();
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(functions.map((f) => [f.key, f.source])),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    mainFields: ['module', 'main'],
    minify: true,
    plugins: createRequire(import.meta.url)('../../lib/build/esbuild-plugins.cjs') as Plugin[],
    metafile: true,
    write: false,
    outdir: join(ROOT, '.esbuild', 'iam-graph'),
    logLevel: 'silent',
  });
  const metafile: Metafile = result.metafile;
  for (const output of Object.values(metafile.outputs)) {
    const key = functions.find((f) => f.source === output.entryPoint)?.key;
    if (!key) continue;
    const kept = Object.entries(output.inputs)
      .filter(([, v]) => v.bytesInOutput > 0)
      .map(([path]) => path);
    const actions = kept.flatMap((path) => {
      const m = NESTED.test(path) ? null : COMMAND_FILE.exec(path);
      const action = m ? iamAction(m[1]!, m[2]!) : null;
      return action ? [action] : [];
    });
    bundles.set(key, {
      actions: [...new Set(actions)].sort(),
      modules: Object.keys(output.inputs).filter((p) => p.startsWith('lib/')),
    });
  }
}, 600_000);

function roleStatements(functionKey: string): Statement[] {
  const lambda = lambdaResources(template).get(functionKey);
  const roleId = (lambda?.properties.Role as { 'Fn::GetAtt': string[] } | undefined)?.['Fn::GetAtt'][0];
  const role = roleId ? template.Resources[roleId] : undefined;
  if (!role) throw new Error(`${functionKey} has no role in the template`);
  const policies = (role.Properties!.Policies ?? []) as { PolicyDocument: { Statement: unknown[] } }[];
  // A statement behind Fn::If is granted when its condition holds (e.g. a report bucket is configured).
  return policies
    .flatMap((p) => p.PolicyDocument.Statement)
    .map((s) => ((s as { 'Fn::If'?: unknown[] })['Fn::If']?.[1] ?? s) as Statement)
    .filter((s) => s.Effect === 'Allow');
}

const glob = (action: string) =>
  new RegExp(`^${action.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
const grantsIn = (statements: Statement[], action: string) =>
  statements.some((s) => [s.Action].flat().some((a) => glob(a).test(action)));

/** The SDK operations a module imports (commands and paginators), as IAM actions. */
function importedActions(module: string): string[] {
  const source = readFileSync(join(ROOT, module), 'utf8');
  const actions: string[] = [];
  for (const [, names, service] of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g)) {
    for (const raw of names!.split(',')) {
      const name = raw.trim();
      if (name.startsWith('type ')) continue;
      const operation = /^(\w+)Command$/.exec(name)?.[1] ?? /^paginate(\w+)$/.exec(name)?.[1];
      const action = operation ? iamAction(service!, operation) : null;
      if (action) actions.push(action);
    }
  }
  return actions;
}

describe('IAM roles match the code', () => {
  const functions = listedFunctions();

  it('has a tree-shaken build of every function serverless.yml lists', () => {
    expect([...bundles.keys()].sort()).toEqual(functions.map((f) => f.key).sort());
  });

  it.each(functions.map((f) => f.key))('%s: its role grants every API its bundle can call', (key) => {
    const statements = roleStatements(key);
    expect(bundles.get(key)!.actions.filter((a) => !grantsIn(statements, a))).toEqual([]);
  });

  it.each(functions.map((f) => f.key))('%s: its role grants no API its bundle cannot call', (key) => {
    const actions = bundles.get(key)!.actions.flatMap((a) => [a, ...(IMPLIED[a] ?? [])]);
    const extra = roleStatements(key)
      .flatMap((s) => [s.Action].flat())
      .filter((granted) => !IMPLICIT.test(granted) && !actions.some((a) => glob(granted).test(a)));
    expect(extra).toEqual([]);
  });

  it.each(functions.map((f) => f.key))(
    '%s: if it copies images, EBS may use the DR keys on its behalf, through EC2 only',
    (key) => {
      if (!bundles.get(key)!.actions.includes('ec2:CopyImage')) return;
      const viaEc2 = roleStatements(key).filter((s) => s.Condition?.StringEquals?.['kms:ViaService']);
      expect(EBS_COPY_KEY_ACTIONS.filter((a) => !grantsIn(viaEc2, a))).toEqual([]);
      const grant = viaEc2.filter((s) => [s.Action].flat().includes('kms:CreateGrant'));
      expect(grant.length).toBeGreaterThan(0);
      for (const s of grant) expect(s.Condition?.Bool?.['kms:GrantIsForAWSResource']).toBe('true');
    },
  );

  it('has every lib module that calls AWS declare those calls in REQUIRED_PERMISSIONS', async () => {
    const modules = [...new Set([...bundles.values()].flatMap((b) => b.modules))].sort();
    const undeclared: string[] = [];
    for (const module of modules) {
      const calls = importedActions(module);
      if (!calls.length) continue;
      const { REQUIRED_PERMISSIONS: declared = [] } = (await import(join(ROOT, module))) as {
        REQUIRED_PERMISSIONS?: readonly string[];
      };
      for (const action of calls)
        if (!declared.some((d) => glob(d).test(action))) undeclared.push(`${module}: ${action}`);
    }
    expect(undeclared).toEqual([]);
  });
});
