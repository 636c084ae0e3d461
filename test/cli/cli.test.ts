import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ami } from './run.ts';

const tmp = mkdtempSync(join(tmpdir(), 'ami-dr-cli-'));
const file = (name: string, text: string) => {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
};

describe('ami-dr: usage', () => {
  it('without a command prints the usage and exits 2', async () => {
    const r = await ami([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('Usage: ami-dr <command> [options]');
    for (const c of ['validate', 'replicate', 'readiness', 'retention', 'drill', 'twin', 'demo'])
      expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('an unknown command is one line on stderr, exit 2', async () => {
    const r = await ami(['readines']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^ami-dr: error: unknown command 'readines'; did you mean 'readiness'\?/),
    ]);
  });

  it.each(['validate', 'replicate', 'readiness', 'retention', 'drill', 'twin', 'demo'])(
    '%s --help shows usage, options and examples',
    async (command) => {
      const r = await ami([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: ami-dr ${command}`));
      expect(r.stdout).toContain('--local');
      expect(r.stdout).toMatch(/Examples:\n {2}ami-dr /);
    },
  );

  it('an unknown option, a missing argument and a bad value exit 2 and point to --help', async () => {
    const bogus = await ami(['readiness', '--bogus']);
    expect([bogus.code, bogus.stderr.trim()]).toEqual([
      2,
      "ami-dr: error: unknown option '--bogus' (see 'ami-dr readiness --help')",
    ]);
    const missing = await ami(['replicate']);
    expect([missing.code, missing.stderr.trim()]).toEqual([
      2,
      "ami-dr: error: missing <image-id> (see 'ami-dr replicate --help')",
    ]);
    const badId = await ami(['replicate', 'not-an-image']);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain("'not-an-image' is not an image id");
    const format = await ami(['readiness', '--local', '--format', 'pdf']);
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('--format must be one of table, json, markdown, html');
    const conflict = await ami(['readiness', '--json', '--format', 'html']);
    expect([conflict.code, conflict.stderr.trim().split('\n')]).toEqual([
      2,
      [
        "ami-dr: error: --json prints the report as JSON; it cannot be combined with --format html (see 'ami-dr readiness --help')",
      ],
    ]);
    const mode = await ami(['retention', 'delete']);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toContain("expected 'plan' or 'apply', not 'delete'");
  });
});

describe('ami-dr: policy files', () => {
  it('a missing policy file is one clear line, exit 2; --debug adds the stack', async () => {
    const r = await ami(['readiness', '--policy', join(tmp, 'nope.yml')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^ami-dr: error: cannot read policy file .*nope\.yml: ENOENT/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const debug = await ami(['readiness', '--policy', join(tmp, 'nope.yml'), '--debug']);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('validate lists every schema problem with its field and exits 2', async () => {
    const bad = file(
      'bad.yml',
      [
        'regions:',
        '  sources: [us-east-1]',
        '  dr:',
        '    - { region: us-west-2, kmsKeyId: "not a key" }',
        'replication:',
        '  addLaunchPermissions:',
        '    userIds: ["12345"]',
        '    organizationArns: ["arn:aws:organizations::x"]',
        '    public: true',
        'colour: blue',
      ].join('\n'),
    );
    const r = await ami(['validate', '--policy', bad]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('5 problems');
    expect(r.stdout).toContain('regions.dr.0.kmsKeyId: is not a KMS key id, alias or ARN');
    expect(r.stdout).toContain('replication.addLaunchPermissions.userIds.0: is not a 12-digit AWS account id');
    expect(r.stdout).toContain('replication.addLaunchPermissions.organizationArns.0: is not an organization ARN');
    expect(r.stdout).toContain(
      'replication.addLaunchPermissions.public: copies are encrypted, and encrypted images cannot be made public',
    );
    expect(r.stdout).toContain('colour: is not a known field');

    const json = await ami(['validate', '--policy', bad, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: false,
      problems: expect.arrayContaining([{ field: 'colour', message: 'is not a known field' }]),
    });
  });

  it('validate --local: a valid policy against the account exits 0; a DR key that is not there exits 1 naming the field', async () => {
    const ok = await ami(['validate', '--local']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ami-dr.config.yml is valid for account 000000000000');

    const missingKey = file(
      'missing-key.yml',
      [
        'regions:',
        '  sources: [us-east-1]',
        '  dr:',
        '    - { region: us-west-2, kmsKeyId: alias/ami-dr }',
        '    - { region: eu-west-1, kmsKeyId: "arn:aws:kms:eu-west-1:000000000000:key/9f1c2d3e-0000-4000-8000-000000000000" }',
        '    - { region: xx-nowhere-1, kmsKeyId: alias/ami-dr }',
      ].join('\n'),
    );
    const r = await ami(['validate', '--local', '--policy', missingKey, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      valid: false,
      policyFile: missingKey,
      accountId: '000000000000',
      problems: [
        {
          field: 'regions.dr.1.kmsKeyId',
          message:
            'arn:aws:kms:eu-west-1:000000000000:key/9f1c2d3e-0000-4000-8000-000000000000 does not exist in eu-west-1',
        },
        { field: 'regions.dr.2.region', message: 'xx-nowhere-1 is not a region of this partition' },
      ],
    });
  });

  it('validate --local: copies shared with an account the DR key does not allow exit 1, naming key, account and the statement to add', async () => {
    const shared = (keyAccess: string) =>
      file(
        `shared-${keyAccess}.yml`,
        [
          'regions:',
          '  sources: [us-east-1]',
          '  dr:',
          '    - { region: us-west-2, kmsKeyId: alias/ami-dr }',
          'replication:',
          `  keyAccess: ${keyAccess}`,
          '  addLaunchPermissions:',
          "    userIds: ['444455556666']",
          '    organizationArns: [arn:aws:organizations::999999999999:organization/o-abcdefghij]',
        ].join('\n'),
      );
    // The local account's DR keys let its partner (111122223333) launch; 444455556666 is nobody the key knows.
    const r = await ami(['validate', '--local', '--policy', shared('check')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /regions\.dr\.0\.kmsKeyId: alias\/ami-dr in us-west-2 \(arn:aws:kms:us-west-2:000000000000:key\/[0-9a-f-]+\) does not let 444455556666, arn:aws:organizations::999999999999:organization\/o-abcdefghij use it/,
    );
    // The statements are printed as JSON, ready to paste.
    const printed = r.stdout.slice(r.stdout.indexOf('Statement list:') + 'Statement list:'.length);
    const statements = JSON.parse(printed) as Record<string, unknown>[];
    expect(statements).toEqual([
      expect.objectContaining({ Principal: { AWS: ['arn:aws:iam::444455556666:root'] }, Effect: 'Allow' }),
      expect.objectContaining({
        Principal: { AWS: '*' },
        Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdefghij' } },
      }),
    ]);

    // With grant, ami-dr grants the account itself; the organization still needs the statement.
    const granted = await ami(['validate', '--local', '--policy', shared('grant'), '--json']);
    expect(granted.code).toBe(1);
    const problems = (JSON.parse(granted.stdout) as { problems: { message: string }[] }).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).not.toContain('444455556666');
    expect(problems[0]!.message).toContain('aws:PrincipalOrgID');
  });
});

describe('ami-dr readiness --local', () => {
  it('prints the matrix without colour when not on a terminal, exit 0; --fail-on-gap exits 1', async () => {
    const r = await ami(['readiness', '--local']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^IMAGE\s+REGION\s+NAME\s+AGE\s+US-WEST-2\s+EU-WEST-1$/m);
    expect(r.stdout).toMatch(/web-1\.4\.0\s+3d\s+ready 18m\s+missing 3d/);
    expect(r.stdout).toContain(
      '7 images × 2 DR regions: 12 ready, 0 in progress, 1 missing, 0 failed, 1 drifted (85.7% ready)',
    );
    expect(r.stdout).not.toContain('\u001b[');
    expect(r.stderr).toContain('local twin at http://127.0.0.1:');

    const gap = await ami(['readiness', '--local', '--fail-on-gap', '--format', 'markdown']);
    expect(gap.code).toBe(1);
    expect(gap.stdout).toContain('| Image | Name | Age | us-west-2 | eu-west-1 |');
    expect(gap.stderr).toContain('gap: 2 images not ready in every DR region');
  });

  it('colours the matrix when asked (FORCE_COLOR) and never with NO_COLOR', async () => {
    const forced = await ami(['readiness', '--local'], { env: { FORCE_COLOR: '1' } });
    expect(forced.stdout).toContain('\u001b[32mready 18m');
    const no = await ami(['readiness', '--local'], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
    expect(no.stdout).not.toContain('\u001b[');
  });

  it('--json is one stable document; --reconcile re-drives the missing copy and repairs the drifted one', async () => {
    const r = await ami(['readiness', '--local', '--json', '--reconcile']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc)).toEqual([
      'schemaVersion',
      'generatedAt',
      'policy',
      'sourceRegions',
      'drRegions',
      'rows',
      'summary',
      'plan',
      'reconciliation',
    ]);
    expect(doc.summary.counts).toEqual({ ready: 12, 'in-progress': 0, missing: 1, failed: 0, drifted: 1 });
    expect(doc.reconciliation.redriven).toEqual([
      expect.objectContaining({ regions: ['eu-west-1'], result: 'started' }),
    ]);
    expect(doc.reconciliation.repaired).toEqual([expect.objectContaining({ region: 'us-west-2', applied: ['tags'] })]);
    expect(doc.reconciliation.errors).toEqual([]);
  });
});

describe('ami-dr replicate --local', () => {
  it('an image that does not exist is one line, exit 1', async () => {
    const r = await ami(['replicate', 'ami-0123456789abcdef0', '--local']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'ami-dr: error: image ami-0123456789abcdef0 not found in us-east-1',
    );
  });

  it('a region outside the policy is a usage error', async () => {
    const r = await ami(['replicate', 'ami-0123456789abcdef0', '--region', 'ap-south-1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('ap-south-1 is not a source region of the policy (sources: us-east-1)');
  });
});

describe('ami-dr retention --local', () => {
  it('plan shows what would be removed and why, changing nothing', async () => {
    const r = await ami(['retention', 'plan', '--local', '--region', 'us-east-1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('us-east-1 (plan, nothing changed)');
    expect(r.stdout).toMatch(/web-1\.1\.0\s+will remove\s+120 days old, past deregisterAfterDays 90/);
    expect(r.stdout).toContain('kept referenced: 3');
  });

  it('apply removes it and reports in JSON', async () => {
    const r = await ami(['retention', 'apply', '--local', '--region', 'us-east-1', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ mode: 'apply', dryRun: false });
    expect(doc.regions[0].removed.map((x: { name: string }) => x.name)).toEqual(['web-1.1.0']);
    expect(doc.regions[0].errors).toEqual([]);
  });

  it('plan and apply over every region list the same removals: every region is planned before anything changes', async () => {
    const [plan, apply] = await Promise.all([
      ami(['retention', 'plan', '--local', '--json']),
      ami(['retention', 'apply', '--local', '--json']),
    ]);
    expect(plan.code).toBe(0);
    expect(apply.code).toBe(0);
    type Region = { region: string; planned: { deregister: { imageId: string }[] }; removed: { imageId: string }[] };
    const planned = (JSON.parse(plan.stdout).regions as Region[]).flatMap((r) =>
      r.planned.deregister.map((a) => a.imageId),
    );
    const removed = (JSON.parse(apply.stdout).regions as Region[]).flatMap((r) => r.removed.map((a) => a.imageId));
    expect(planned).toHaveLength(1); // web-1.1.0 in us-east-1; its us-west-2 copy goes in a later run
    expect(removed.sort()).toEqual(planned.sort());
    // The copy of the removed source says why it stays.
    const west = (
      JSON.parse(apply.stdout).regions as (Region & { kept: { name: string; rule: string; detail: string }[] })[]
    ).find((r) => r.region === 'us-west-2');
    expect(west?.kept.find((k) => k.name === 'web-1.1.0')).toMatchObject({
      rule: 'live-source',
      detail: expect.stringMatching(
        /^its source us-east-1\/ami-[0-9a-f]+ is removed in this run; this copy goes in a later run$/,
      ),
    });
  });

  it('refuses a region the policy does not govern (a typo must not remove images there), exit 2', async () => {
    const r = await ami(['retention', 'apply', '--local', '--region', 'us-east-2']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(
      "ami-dr: error: us-east-2 is not a region of the policy (us-east-1, us-west-2, eu-west-1) (see 'ami-dr retention --help')",
    );
  });
});

describe('ami-dr drill --local', () => {
  it('--json prints the drill results as JSON and exits 0 on the demo account', async () => {
    const r = await ami(['drill', '--local', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      results: { region: string; family: string; outcome: string; instanceType: string; terminated: boolean }[];
      summary: { drills: number; passed: number; failed: number };
    };
    expect(report.results.map((x) => `${x.family}@${x.region} ${x.outcome} ${x.instanceType}`).sort()).toEqual([
      'batch@eu-west-1 passed t3.nano',
      'batch@us-west-2 passed t3.nano',
      'web@eu-west-1 passed t3.nano',
      'web@us-west-2 passed t3.nano',
    ]);
    expect(report.results.every((x) => x.terminated)).toBe(true);
    expect(report.summary).toMatchObject({ drills: 4, passed: 4, failed: 0 });
  });

  it('without --json prints one line per drill and a total', async () => {
    const r = await ami(['drill', '--local']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines.slice(0, 4).every((l) => /^passed {2}(us-west-2|eu-west-1) {2}(web|batch) {2}ami-/.test(l))).toBe(
      true,
    );
    expect(lines[4]).toMatch(/^4 drills: 4 passed, 0 failed; [\d.]+ instance-minutes$/);
  });
});
