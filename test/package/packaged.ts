import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

/**
 * The output of `npm run package`, shared by the package tests and the bundle bench: packaged at most once per run
 * (whichever test file gets here first packages, the others wait for it) and reused while it is newer than every
 * input that goes into it.
 */

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const OUT = join(ROOT, '.serverless');
export const TEMPLATE = join(OUT, 'cloudformation-template-update-stack.json');

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  Condition?: string;
}
export interface Template {
  Resources: Record<string, CfnResource>;
  Conditions?: Record<string, unknown>;
  Parameters?: Record<string, unknown>;
  Outputs?: Record<string, unknown>;
}

/** A function as serverless.yml lists it. */
export interface ListedFunction {
  key: string;
  /** e.g. functions/on-image-event.handler */
  handler: string;
  /** Source file of the handler, relative to the repo: functions/on-image-event.ts */
  source: string;
  /** The zip osls writes for it. */
  zip: string;
  /** Path of the bundle inside the zip: functions/on-image-event.mjs */
  bundle: string;
}

interface ServerlessYml {
  functions: Record<string, { handler: string }>;
}

export function listedFunctions(): ListedFunction[] {
  const config = parseYaml(readFileSync(join(ROOT, 'serverless.yml'), 'utf8')) as ServerlessYml;
  return Object.entries(config.functions).map(([key, { handler }]) => {
    const module = handler.slice(0, handler.lastIndexOf('.'));
    return { key, handler, source: `${module}.ts`, zip: join(OUT, `${key}.zip`), bundle: `${module}.mjs` };
  });
}

/** Handler files serverless.yml names that are not in the tree. */
export function missingHandlers(): string[] {
  return listedFunctions()
    .map((f) => f.source)
    .filter((source) => !existsSync(join(ROOT, source)));
}

const INPUTS = [
  'serverless.yml',
  'ami-dr.config.yml',
  'package.json',
  'package-lock.json',
  'functions',
  'lib',
  'statemachines',
];

function newestInput(): number {
  let newest = 0;
  const visit = (path: string): void => {
    if (!existsSync(path)) return;
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const input of INPUTS) visit(join(ROOT, input));
  return newest;
}

/**
 * One `npm run package`: the home region's stack (the default), or a stack outside the home region, packaged with
 * `--param home=<another region>` into its own directory.
 */
export interface Packaging {
  out: string;
  args: string[];
}

export const HOME_STACK: Packaging = { out: OUT, args: [] };
/** us-east-1 (the example policy's first source region) as a replication-only stack: eu-west-1 is home. */
export const REPLICATION_STACK: Packaging = {
  out: join(ROOT, '.serverless-replication'),
  args: ['--param', 'home=eu-west-1', '--package', '.serverless-replication'],
};

const templateOf = (packaging: Packaging) => join(packaging.out, 'cloudformation-template-update-stack.json');

/** True when the package output exists for every function it holds and is newer than every input. */
export function isFresh(packaging: Packaging = HOME_STACK): boolean {
  const template = templateOf(packaging);
  if (!existsSync(template)) return false;
  const built = statSync(template).mtimeMs;
  const functions = [...lambdaResources(readTemplateAt(template)).keys()];
  return (
    built >= newestInput() &&
    functions.length > 0 &&
    functions.every((key) => {
      const zip = join(packaging.out, `${key}.zip`);
      return existsSync(zip) && statSync(zip).mtimeMs <= built + 60_000;
    })
  );
}

const run = promisify(execFile);
const LOCK = join(tmpdir(), `ami-dr-package-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock left by a killed run is older than any real packaging takes.
      const held = statSync(LOCK, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 10 * 60_000) rmSync(LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for another packaging run (${LOCK})`);
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Runs `npm run package` (with the packaging's options) unless its output is fresh; returns the template. */
export async function ensurePackaged(packaging: Packaging = HOME_STACK): Promise<Template> {
  const missing = missingHandlers();
  if (missing.length) throw new Error(`serverless.yml lists handlers that do not exist: ${missing.join(', ')}`);
  await withLock(async () => {
    if (isFresh(packaging)) return;
    const extra = packaging.args.length ? ['--', ...packaging.args] : [];
    // osls clears .serverless/ whatever --package says: keep the home stack's output aside meanwhile.
    const aside = packaging.out !== OUT && existsSync(OUT) ? `${OUT}.aside` : undefined;
    if (aside) {
      rmSync(aside, { recursive: true, force: true });
      renameSync(OUT, aside);
    }
    try {
      await run('npm', ['run', '--silent', 'package', ...extra], {
        cwd: ROOT,
        maxBuffer: 64 * 1024 * 1024,
        timeout: 10 * 60_000,
      });
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(`npm run package failed:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error });
    } finally {
      if (aside) {
        rmSync(OUT, { recursive: true, force: true });
        renameSync(aside, OUT);
      }
    }
  });
  return readTemplateAt(templateOf(packaging));
}

export function readTemplate(): Template {
  return readTemplateAt(TEMPLATE);
}

function readTemplateAt(path: string): Template {
  return JSON.parse(readFileSync(path, 'utf8')) as Template;
}

/** The Lambda functions of a packaged template, by their serverless.yml key. */
export function lambdaResources(
  template: Template,
): Map<string, { logicalId: string; properties: Record<string, unknown> }> {
  const byName = new Map<string, { logicalId: string; properties: Record<string, unknown> }>();
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function' || !logicalId.endsWith('LambdaFunction')) continue;
    const key = logicalId.slice(0, -'LambdaFunction'.length);
    byName.set(key.charAt(0).toLowerCase() + key.slice(1), { logicalId, properties: resource.Properties ?? {} });
  }
  return byName;
}

/** The function's environment from the template, with CloudFormation's values stood in for. */
export function lambdaEnvironment(properties: Record<string, unknown>): Record<string, string> {
  const variables = (properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
  const stand = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const text = JSON.stringify(value);
    if (text === '{"Ref":"RunsBucket"}') return 'ami-dr-dev-runsbucket-0123456789ab';
    const machine = /"(Replicate|Retention|Readiness)StateMachine"/.exec(text)?.[1];
    if (machine) return `arn:aws:states:us-east-1:000000000000:stateMachine:ami-dr-dev-${machine.toLowerCase()}`;
    const sub = (value as { 'Fn::Sub'?: string })['Fn::Sub'];
    if (typeof sub === 'string')
      return sub
        .replaceAll('${AWS::Partition}', 'aws')
        .replaceAll('${AWS::AccountId}', '000000000000')
        .replaceAll('${AWS::Region}', 'us-east-1');
    throw new Error(`no stand-in for environment value ${text}`);
  };
  return Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, stand(v)]));
}

/** The environment a bundle is imported with in a fresh node process: the function's own, fake credentials, quiet logs. */
export function importEnvironment(properties: Record<string, unknown>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    ...lambdaEnvironment(properties),
  };
}
