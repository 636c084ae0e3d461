import { join } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensurePackaged, lambdaResources, listedFunctions, ROOT, type Template } from './packaged.ts';

/**
 * serverless.yml checked against the code: every lib module that calls AWS declares the IAM actions it needs
 * (`export const REQUIRED_PERMISSIONS`), and each function's role must grant the actions of every module its
 * bundle contains (the import graph is esbuild's metafile of the same build serverless-esbuild makes).
 */

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: unknown;
}

/** Modules that make SDK clients but call no AWS API themselves. */
const CONSTRUCTS_ONLY = new Set(['lib/aws/clients.ts']);

let template: Template;
const graph = new Map<string, { modules: string[]; callsAws: string[] }>();
const declared = new Map<string, readonly string[] | undefined>();

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
    metafile: true,
    write: false,
    outdir: join(ROOT, '.esbuild', 'iam-graph'),
    logLevel: 'silent',
  });
  const metafile: Metafile = result.metafile;
  for (const output of Object.values(metafile.outputs)) {
    const key = output.entryPoint && functions.find((f) => f.source === output.entryPoint)?.key;
    if (!key) continue;
    const modules = Object.keys(output.inputs).filter((p) => p.startsWith('lib/') || p.startsWith('functions/'));
    const callsAws = modules.filter(
      (p) => !CONSTRUCTS_ONLY.has(p) && metafile.inputs[p]!.imports.some((i) => i.original?.startsWith('@aws-sdk/client-')),
    );
    graph.set(key, { modules, callsAws });
  }
  for (const module of new Set([...graph.values()].flatMap((g) => g.modules))) {
    if (!module.startsWith('lib/')) continue;
    const exports = (await import(join(ROOT, module))) as { REQUIRED_PERMISSIONS?: readonly string[] };
    declared.set(module, exports.REQUIRED_PERMISSIONS);
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
    .flatMap((s) => ((s as { 'Fn::If'?: unknown[] })['Fn::If'] ? [(s as { 'Fn::If': unknown[] })['Fn::If'][1]] : [s])) as Statement[];
}

function pattern(action: string): RegExp {
  return new RegExp(`^${action.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
}

function grants(statements: Statement[], action: string): boolean {
  return statements.some((s) => s.Effect === 'Allow' && [s.Action].flat().some((a) => a === action || pattern(a).test(action)));
}

describe('IAM roles match the code', () => {
  const functions = listedFunctions();

  it('has an import graph for every function serverless.yml lists', () => {
    expect([...graph.keys()].sort()).toEqual(functions.map((f) => f.key).sort());
  });

  it('has every module that calls AWS declare REQUIRED_PERMISSIONS', () => {
    const undeclared = [...new Set([...graph.values()].flatMap((g) => g.callsAws))].filter((m) => !declared.get(m)?.length);
    expect(undeclared, 'modules importing an @aws-sdk client without a non-empty REQUIRED_PERMISSIONS').toEqual([]);
  });

  it('declares permissions as service:Action strings', () => {
    const malformed = [...declared.entries()].flatMap(([module, actions]) =>
      (actions ?? []).filter((a) => typeof a !== 'string' || !/^[a-z0-9-]+:[A-Za-z*]+$/.test(a)).map((a) => `${module}: ${String(a)}`),
    );
    expect(malformed).toEqual([]);
  });

  it.each(functions.map((f) => f.key))('%s: its role grants every action its modules declare', (key) => {
    const { modules } = graph.get(key)!;
    const statements = roleStatements(key);
    const missing = modules.flatMap((m) => (declared.get(m) ?? []).filter((a) => !grants(statements, a)).map((a) => `${a} (${m})`));
    expect(missing).toEqual([]);
  });

  it.each(functions.map((f) => f.key))('%s: its role grants no API action its modules do not declare', (key) => {
    const { modules } = graph.get(key)!;
    const needed = modules.flatMap((m) => declared.get(m) ?? []);
    // Logs are the runtime's; KMS is used by EBS on the role's behalf; SQS is Lambda's failure destination.
    const implicit = /^(logs|kms|sqs):/;
    const extra = roleStatements(key)
      .flatMap((s) => [s.Action].flat())
      .filter((a) => !implicit.test(a) && !needed.some((n) => n === a || pattern(a).test(n) || pattern(n).test(a)));
    expect(extra).toEqual([]);
  });
});
