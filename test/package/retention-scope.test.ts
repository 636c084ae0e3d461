import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, type Policy } from '../../lib/domain/policy.ts';
import { ensurePackaged, ROOT, type Template } from './packaged.ts';

/**
 * The retention role in the packaged template does no more harm than the policy allows: its destructive EC2
 * actions only in the policy's regions, its S3 object reads and deletes only in the policy's bundle buckets.
 */

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

const DESTRUCTIVE_EC2 = ['ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:EnableImageDeprecation'];
const S3_OBJECT = /^s3:(\*|GetObject|DeleteObject|\*Object\*?)$/;

/** The role's statements, both branches of every Fn::If (a condition may be true in some deployment). */
function statementsOf(template: Template, role: string): Statement[] {
  const props = template.Resources[role]?.Properties as
    { Policies?: { PolicyDocument: { Statement: unknown[] } }[] } | undefined;
  const flatten = (s: unknown): Statement[] => {
    if (s && typeof s === 'object' && 'Fn::If' in s) return (s['Fn::If'] as unknown[]).slice(1).flatMap(flatten);
    if (s && typeof s === 'object' && 'Effect' in s) return [s as Statement];
    return [];
  };
  return (props?.Policies ?? []).flatMap((p) => p.PolicyDocument.Statement.flatMap(flatten));
}

const actions = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);
/** A resource as text: a plain ARN, or the template of an Fn::Sub. */
const text = (r: unknown): string =>
  typeof r === 'string' ? r : r && typeof r === 'object' && 'Fn::Sub' in r ? String(r['Fn::Sub']) : JSON.stringify(r);

let template: Template;
let policy: Readonly<Policy>;

beforeAll(async () => {
  template = await ensurePackaged();
  policy = parsePolicy(parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')));
}, 600_000);

describe('the retention role, packaged', () => {
  it("allows deregistering, deleting snapshots and deprecating only in the policy's regions", () => {
    const regions = [...new Set([...policy.regions.sources, ...policy.regions.dr.map((d) => d.region)])];
    const destructive = statementsOf(template, 'RetentionRole').filter(
      (s) => s.Effect === 'Allow' && actions(s).some((a) => DESTRUCTIVE_EC2.includes(a) || a === 'ec2:*'),
    );
    expect(destructive.length).toBeGreaterThan(0);
    for (const s of destructive) {
      const requested = s.Condition?.StringEquals?.['aws:RequestedRegion'];
      expect(requested, `unconditioned: ${JSON.stringify(s)}`).toBeDefined();
      expect([...list(requested)].sort()).toEqual([...regions].sort());
    }
  });

  it("reads and deletes S3 objects only in the policy's bundle buckets (and reads its scheduled runs' plans and data)", () => {
    const buckets = policy.retention.bundleBuckets ?? [];
    expect(buckets.length).toBeGreaterThan(0);
    // A scheduled run's units read the plan its plan step wrote, and nothing else of the report bucket.
    const planRead = (s: (typeof statements)[number]) =>
      actions(s).every((a) => a === 's3:GetObject') &&
      list(s.Resource).every((r) => text(r).endsWith('retention/runs/*/plan.json'));
    // Its aggregate step reads the run's data (unit list, failures, results) in the runs bucket, deleting nothing.
    const runDataRead = (s: (typeof statements)[number]) =>
      actions(s).every((a) => a === 's3:GetObject') &&
      list(s.Resource).every((r) => text(r) === 'arn:${AWS::Partition}:s3:::${RunsBucket}/retention/*');
    const statements = statementsOf(template, 'RetentionRole');
    expect(statements.filter(planRead)).toHaveLength(1);
    expect(statements.filter(runDataRead)).toHaveLength(1);
    const s3 = statements.filter(
      (s) => s.Effect === 'Allow' && actions(s).some((a) => S3_OBJECT.test(a)) && !planRead(s) && !runDataRead(s),
    );
    expect(s3.length).toBeGreaterThan(0);
    for (const s of s3) {
      for (const r of list(s.Resource)) {
        const arn = text(r);
        expect(
          buckets.some((b) => arn === `arn:\${AWS::Partition}:s3:::${b}/*` || arn === `arn:aws:s3:::${b}/*`),
          `${arn} is outside retention.bundleBuckets`,
        ).toBe(true);
      }
    }
  });
});
