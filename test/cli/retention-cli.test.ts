import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli/main.ts';
import { ManualClock } from '../../local/twin/clock.ts';
import { startTwin, type Twin } from '../../local/twin/twin.ts';
import { ROOT } from './run.ts';

// `ami-dr retention` run in-process (main()), against the --local twin or a twin this file starts.

const DAY = 86_400_000;
const tmp = mkdtempSync(join(tmpdir(), 'ami-dr-retention-cli-'));
const file = (name: string, text: string): string => {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
};

async function run(argv: string[], signal?: AbortSignal) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env: { ...process.env, NO_COLOR: '1' },
    ...(signal ? { signal } : {}),
  });
  return { code, stdout, stderr };
}

describe('the policy binds retention apply (--local)', () => {
  const example = readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8');

  it('under retention.dryRun: true, apply removes nothing and says so', async () => {
    const policy = file('dry.yml', example.replace(/^ {2}dryRun: false$/m, '  dryRun: true'));
    expect(readFileSync(policy, 'utf8')).toMatch(/^ {2}dryRun: true$/m);
    const r = await run(['retention', 'apply', '--local', '--policy', policy, '--region', 'us-east-1', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ mode: 'apply', dryRun: true });
    expect(doc.regions[0].removed).toEqual([]);
    expect(doc.regions[0].deprecated).toEqual([]);
    // The same run without the policy's dryRun removes web-1.1.0 (test/cli/cli.test.ts): here it is only planned.
    expect(doc.regions[0].planned.deregister.map((x: { name: string }) => x.name)).toEqual(['web-1.1.0']);
    expect(r.stderr).toContain(`note: retention.dryRun is true in ${policy}: planning only, nothing is changed`);
  });

  it('under retention.enabled: false, apply does nothing and says so', async () => {
    const policy = file('off.yml', example.replace(/^retention:$/m, 'retention:\n  enabled: false'));
    const r = await run(['retention', 'apply', '--local', '--policy', policy, '--region', 'us-east-1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`note: retention.enabled is false in ${policy}: nothing is deprecated or removed`);
    expect(r.stdout).toContain('us-east-1 (plan, nothing changed)');
    expect(r.stdout).not.toMatch(/\bremoved\s/);
  });
});

describe('ami-dr retention against a twin', () => {
  let twin: Twin | undefined;
  afterEach(async () => {
    vi.unstubAllEnvs();
    await twin?.stop();
    twin = undefined;
  });

  async function twinWith(images: { name: string; ageDays: number; tags?: Record<string, string> }[], clock?: number) {
    twin = await startTwin({ s3: false, ...(clock !== undefined ? { clock: new ManualClock(clock) } : {}) });
    for (const i of images)
      twin.seed.image('us-east-1', {
        name: i.name,
        creationDate: Date.now() - i.ageDays * DAY,
        ...(i.tags ? { tags: i.tags } : {}),
      });
    vi.stubEnv('AWS_ENDPOINT_URL', twin.endpoint);
    vi.stubEnv('AWS_REGION', 'us-east-1');
    return twin;
  }

  const policyFile = (name: string, sources: string) =>
    file(
      name,
      [
        'regions:',
        '  sources: [us-east-1]',
        '  dr: [{ region: us-west-2, kmsKeyId: alias/ami-dr }]',
        'retention:',
        '  protectInUse: false',
        `  sources: ${sources}`,
        '',
      ].join('\n'),
    );
  const eightOld = Array.from({ length: 8 }, (_, i) => ({ name: `app-1.0.${i}`, ageDays: 200 - i }));
  const removeAllButOne = () => policyFile('remove.yml', '{ deregisterAfterDays: 90, keepLatest: 1 }');

  it('prints planner warnings in text output too, on stderr, and money as dollars', async () => {
    await twinWith([
      { name: 'web-1.0', ageDays: 200, tags: { Family: 'web' } },
      { name: 'web-1.1', ageDays: 190, tags: { Family: 'web' } },
      { name: 'web-1.2', ageDays: 180 },
    ]);
    const policy = policyFile('family.yml', '{ deregisterAfterDays: 90, keepLatest: 1, family: { tag: Family } }');
    const r = await run(['retention', 'plan', '--policy', policy, '--region', 'us-east-1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /^warning: us-east-1: retention\.sources\.family\.tag "Family" is missing on 1 image\(s\), grouped by name/m,
    );
    expect(r.stdout).not.toContain('warning');
    expect(r.stdout).toMatch(/GiB to free \(~\$\d+\.\d\d\/month\)/);
  });

  it('shows a deprecation EC2 refused as failed, and counts it', async () => {
    // The twin's clock runs 11 years ahead, so EC2 refuses the deprecation time as being in the past.
    await twinWith(
      [
        { name: 'api-1.0', ageDays: 45 },
        { name: 'api-1.1', ageDays: 40 },
      ],
      Date.now() + 11 * 365 * DAY,
    );
    const policy = policyFile('deprecate.yml', '{ deprecateAfterDays: 30, keepLatest: 1 }');
    const r = await run(['retention', 'apply', '--policy', policy, '--region', 'us-east-1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/api-1\.0\s+failed\s/);
    expect(r.stdout).not.toContain('pending');
    expect(r.stdout).toContain('0 deprecated, 0 removed, 1 failed, 0 left for the next run');
    expect(r.stdout).toMatch(/error deprecate ami-[0-9a-f]+: InvalidParameterValue/);
  });

  it.each(['text', 'json'])(
    'Ctrl-C during apply lets the calls in flight finish, reports what was done and what is left (%s), exit 130',
    async (format) => {
      const t = await twinWith(eightOld);
      const interrupt = new AbortController();
      t.events.subscribe((e) => {
        if (e['detail-type'] === 'EC2 AMI State Change' && e.detail.State === 'deregistered') interrupt.abort();
      });
      const args = ['retention', 'apply', '--policy', removeAllButOne(), '--region', 'us-east-1'];
      const r = await run(format === 'json' ? [...args, '--json'] : args, interrupt.signal);
      expect(r.code).toBe(130);
      const left = [...t.state.region('us-east-1').images.values()].filter((i) => i.state === 'available');
      const removed = 8 - left.length;
      expect(removed).toBeGreaterThanOrEqual(1);
      expect(left.length).toBeGreaterThanOrEqual(2); // the newest (kept) and at least one not started
      if (format === 'json') {
        const doc = JSON.parse(r.stdout);
        expect(doc).toMatchObject({ mode: 'apply', dryRun: false, interrupted: true });
        const [region] = doc.regions;
        expect(region.removed).toHaveLength(removed);
        expect(region.pending).toHaveLength(7 - removed);
        expect(region.complete).toBe(false);
      } else {
        expect(r.stdout.match(/\bremoved\s/g)).toHaveLength(removed);
        expect(r.stdout.match(/\bpending\s/g)).toHaveLength(7 - removed);
        expect(r.stderr).toContain(
          `interrupted: 0 deprecated, ${removed} removed, ${7 - removed} left for the next run`,
        );
      }
      expect(r.stderr).toMatch(/ami-dr: interrupted\n$/);
    },
  );

  it('--time-budget bounds the apply; what does not fit is left for the next run', async () => {
    const t = await twinWith(eightOld);
    // Less than the time apply keeps in hand for one image: nothing is started.
    const r = await run([
      'retention',
      'apply',
      '--policy',
      removeAllButOne(),
      '--region',
      'us-east-1',
      '--time-budget',
      '1s',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('0 deprecated, 0 removed, 7 left for the next run');
    expect(r.stderr).toContain('time budget spent: 0 deprecated, 0 removed, 7 left for the next run');
    expect([...t.state.region('us-east-1').images.values()].filter((i) => i.state === 'available')).toHaveLength(8);
  });

  it.each(['5x', '0s', 'soon', '25h', ''])('refuses --time-budget %j, exit 2', async (value) => {
    const r = await run(['retention', 'apply', '--policy', removeAllButOne(), '--time-budget', value]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(
      `ami-dr: error: --time-budget must be a duration between 1s and 24h, like 90s, 5m, 1h or 1h30m (not '${value}') (see 'ami-dr retention --help')`,
    );
  });
});
