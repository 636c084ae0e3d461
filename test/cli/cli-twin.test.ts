import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateRuleCommand, RbinClient } from '@aws-sdk/client-rbin';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../lib/domain/policy.ts';
import { STATUS_COLOR } from '../../lib/report/html.ts';
import { ManualClock } from '../../local/twin/clock.ts';
import { jsonError } from '../../local/twin/http.ts';
import { startLocalRuntime, type LocalRuntime } from '../../local/runtime/runtime.ts';
import { startTwin } from '../../local/twin/twin.ts';
import { backgroundOf, openBrowser, rgb } from '../integration/readiness/browser.ts';
import { ami, BIN, ROOT } from './run.ts';

describe('ami-dr against a twin the test started (AWS_ENDPOINT_URL)', () => {
  let rt: LocalRuntime;
  let env: Record<string, string>;
  const policy = parsePolicy({
    regions: {
      sources: ['us-east-1'],
      dr: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
      ],
    },
  });

  beforeAll(async () => {
    rt = await startLocalRuntime({ policy, clock: new ManualClock(Date.UTC(2026, 2, 1)) });
    for (const region of ['us-west-2', 'eu-west-1']) rt.twin.seed.key(region, { alias: 'ami-dr' });
    env = {
      AWS_ENDPOINT_URL: rt.twin.endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
      STATE_MACHINE_ARN: rt.stateMachineArn('us-east-1'),
    };
  });
  afterAll(async () => {
    await rt?.stop();
  });

  it('replicate --wait starts the replication and follows it to every DR region', async () => {
    // Seeded directly: no event, so only the command replicates it.
    const imageId = rt.twin.seed.image('us-east-1', { name: 'app-7.0', tags: { Team: 'core' } });
    const r = await ami(['replicate', imageId, '--wait'], { env });
    // stderr holds only progress (shown once the wait has taken a second, which a loaded machine reaches).
    expect(r.stderr).not.toMatch(/error|warning/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `started replication of ${imageId} (app-7.0) from us-east-1 to us-west-2, eu-west-1: us-east-1_${imageId}_`,
    );
    expect(r.stdout).toMatch(/✓ us-west-2: available ami-[0-9a-f]+/);
    expect(r.stdout).toMatch(/✓ eu-west-1: available ami-[0-9a-f]+/);
    expect(r.stdout).toContain('replicated to 2 DR regions');

    const table = await ami(['readiness', '--policy', join(ROOT, 'test/cli/fixtures/two-regions.yml')], { env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${imageId}\\s+us-east-1\\s+app-7\\.0\\s+.*\\s+ready [^\\n]+\\s+ready `));
    expect(table.stdout).toContain('1 image × 2 DR regions: 2 ready');
  });

  it('validate names the Recycle Bin rules in force in the regions retention looks after', async () => {
    const rbin = new RbinClient({
      region: 'us-west-2',
      endpoint: rt.twin.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await rbin.send(
      new CreateRuleCommand({
        ResourceType: 'EBS_SNAPSHOT',
        RetentionPeriod: { RetentionPeriodValue: 21, RetentionPeriodUnit: 'DAYS' },
        ResourceTags: [{ ResourceTagKey: 'Team', ResourceTagValue: 'core' }],
      }),
    );

    const r = await ami(['validate', '--policy', join(ROOT, 'test/cli/fixtures/two-regions.yml')], { env });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Recycle Bin rules in force');
    expect(r.stdout).toMatch(
      /us-west-2: Recycle Bin rule \S+: EBS snapshots tagged Team=core kept 21 days after deletion/,
    );
    expect(r.stdout).not.toMatch(/(us-east-1|eu-west-1): Recycle Bin rule/);
  });

  it('replicate refuses an ami-dr copy, and an unreachable endpoint exits 3', async () => {
    const sourceId = rt.twin.seed.image('us-east-1', { name: 'replica-in-source', tags: { 'ami-dr:role': 'replica' } });
    const replica = await ami(['replicate', sourceId], { env });
    expect(replica.code).toBe(1);
    expect(replica.stderr).toContain(`${sourceId} is not replicated: ${sourceId} is an ami-dr copy`);

    const down = await ami(['readiness'], { env: { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^ami-dr: error: cannot reach AWS \(ECONNREFUSED\)/);
  });
});

describe('ami-dr validate when KMS refuses to describe the key', () => {
  it('says AWS refused the request, exit 3, rather than calling the key missing', async () => {
    const twin = await startTwin({ port: 0 });
    try {
      // Credentials without kms:DescribeKey: the key exists, but the caller may not look at it.
      twin.register('kms', (request) =>
        jsonError(400, 'AccessDeniedException', `User is not authorized to perform: kms:${request.action}`),
      );
      const env = {
        AWS_ENDPOINT_URL: twin.endpoint,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
      };
      const r = await ami(['validate'], { env });
      expect(r.stdout).not.toContain('does not exist');
      expect(r.code).toBe(3);
      expect(r.stderr.trim()).toMatch(
        /^ami-dr: error: AWS refused the request \(AccessDeniedException\): User is not authorized to perform: kms:DescribeKey$/,
      );
    } finally {
      await twin.stop();
    }
  });
});

describe('ami-dr readiness --format html', () => {
  it('writes one file a person can open: what is not ready and why first, coloured cells, details on click', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ami-dr-cli-html-')), 'readiness.html');
    const r = await ami(['readiness', '--local', '--format', 'html', '--output', out]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('85.7% ready; 2 of 7 images not ready everywhere');

    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(pathToFileURL(out).href);
      const gaps = await page.locator('#gaps tbody tr').allInnerTexts();
      expect(gaps).toEqual([
        expect.stringMatching(
          /^missing\s+ami-\w+\s+web-1\.4\.0 · us-east-1\s+eu-west-1\s+3d\s+no copy in this region$/,
        ),
        expect.stringMatching(
          /^drifted\s+ami-\w+\s+batch-2026\.01 · us-east-1\s+us-west-2\s+\S+.*\s+tags changed Team$/,
        ),
      ]);
      const row = page.locator('#matrix tbody tr', { hasText: 'web-1.4.0' });
      const missing = row.locator('td').nth(1);
      await expect(missing.innerText()).resolves.toMatch(/^missing\s+3d$/);
      await expect(backgroundOf(missing)).resolves.toBe(rgb(STATUS_COLOR.missing.background));
      await expect(backgroundOf(row.locator('td').nth(0))).resolves.toBe(rgb(STATUS_COLOR.ready.background));
      await missing.click();
      await expect(page.locator('#details dd.reason').innerText()).resolves.toBe('no copy in this region');
      const drifted = page.locator('#matrix tbody tr', { hasText: 'batch-2026.01' }).locator('td').nth(0);
      await drifted.click();
      await expect(page.locator('#details dd.drift').innerText()).resolves.toBe('tags changed Team');
    } finally {
      await browser.close();
    }
  });
});

describe('ami-dr twin and ami-dr demo', () => {
  it('twin prints the environment to use it, serves it, and stops on Ctrl-C with exit 0', async () => {
    const child = spawn(process.execPath, [BIN, 'twin', '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /^AWS_ENDPOINT_URL=(\S+)$/m.exec(stdout);
        if (m?.[1]) resolve(m[1]);
      });
      child.on('exit', () => reject(new Error(`twin exited: ${stdout}`)));
    });
    const validate = await ami(['validate'], {
      env: {
        AWS_ENDPOINT_URL: endpoint,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
      },
    });
    expect(validate.stdout).toContain('is valid for account 000000000000');
    expect(validate.code).toBe(0);
    const code = await new Promise<number | null>((resolve) => {
      child.on('close', resolve);
      child.kill('SIGINT');
    });
    expect(code).toBe(0);
  });

  it('demo runs the lifecycle end to end in under a minute, exit 0', async () => {
    const started = Date.now();
    const r = await ami(['demo'], { timeoutMs: 90_000 });
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(r.stdout).toMatch(/us-west-2 +CopyImage web-1\.5\.0 → ami-/);
    expect(r.stdout).toMatch(/missing +web-1\.5\.1 → us-west-2: no copy in this region/);
    expect(r.stdout).toMatch(/re-drive web-1\.5\.1 → us-west-2, eu-west-1: started/);
    expect(r.stdout).toContain('10 images × 2 DR regions: 20 ready');
    expect(r.stdout).toMatch(/us-east-1 applied: 0 deprecated, 2 removed/);
    expect(r.stdout).toContain('every image is ready in every DR region; retention clean.');
  });

  it('validate --local checks a DR account through its replicator role, and names a role it cannot assume', async () => {
    const ok = await ami(['validate', '--policy', 'examples/dr-account.yml', '--local'], { timeoutMs: 60_000 });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('examples/dr-account.yml is valid');
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-'));
    const file = join(dir, 'missing-role.yml');
    writeFileSync(
      file,
      readFileSync(join(ROOT, 'examples', 'dr-account.yml'), 'utf8').replace(
        'role: ami-dr-replicator',
        'role: not-there',
      ),
    );
    const missing = await ami(['validate', '--policy', file, '--local'], { timeoutMs: 60_000 });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(
      /regions\.dr\.1\.role: cannot assume arn:aws:iam::222222222222:role\/not-there: AccessDenied/,
    );
  });

  it("drill --local --policy examples/dr-account.yml drills the DR account's copies there; a drill role it cannot assume fails only that region, exit 1", async () => {
    const ok = await ami(['drill', '--policy', 'examples/dr-account.yml', '--local', '--json'], { timeoutMs: 60_000 });
    expect(ok.code).toBe(0);
    const report = JSON.parse(ok.stdout) as { results: { region: string; account?: string; outcome: string }[] };
    expect(report.results.map((x) => `${x.region} ${x.account ?? 'own'} ${x.outcome}`).sort()).toEqual([
      'eu-west-1 own passed',
      'eu-west-1 own passed',
      'us-west-2 222222222222 passed',
      'us-west-2 222222222222 passed',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-'));
    const file = join(dir, 'missing-drill-role.yml');
    writeFileSync(
      file,
      readFileSync(join(ROOT, 'examples', 'dr-account.yml'), 'utf8').replace(
        'drillRole: ami-dr-drill',
        'drillRole: not-there',
      ),
    );
    const missing = await ami(['drill', '--policy', file, '--local'], { timeoutMs: 60_000 });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(
      /^failed \(account-access\) {2}us-west-2 {2}\(222222222222\) {2}cannot assume arn:aws:iam::222222222222:role\/not-there: AccessDenied/m,
    );
    expect(missing.stdout).toMatch(/^2 drills: 2 passed, 0 failed, 1 DR region not reached; [\d.]+ instance-minutes$/m);
  });

  it('demo --policy examples/dr-account.yml replicates into the DR account 222222222222 and shows it ready, exit 0', async () => {
    const r = await ami(['demo', '--policy', 'examples/dr-account.yml', '--json'], { timeoutMs: 90_000 });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      converged: boolean;
      executions: { status: string; output?: string }[];
      readiness: { after: { imagesNotReady: number; counts: { ready: number } } };
    };
    expect(out.converged).toBe(true);
    expect(out.readiness.after).toMatchObject({ imagesNotReady: 0, counts: { ready: 20 } });
    // The builds' copies in us-west-2 are the DR account's, sealed, and the share made for them is taken back.
    const vault = out.executions
      .map(
        (e) =>
          JSON.parse(e.output ?? '{}') as {
            regions?: { region: string; account?: string; status: string; applied?: { sealed?: boolean } }[];
            shares?: unknown[];
          },
      )
      .map((s) => ({ region: s.regions?.find((x) => x.region === 'us-west-2'), shares: s.shares }));
    expect(vault).toHaveLength(2);
    for (const v of vault) {
      expect(v.region).toMatchObject({ account: '222222222222', status: 'available', applied: { sealed: true } });
      expect(v.shares).toEqual([{ account: '222222222222', removed: true, grantsRevoked: 0 }]);
    }
  });
});
