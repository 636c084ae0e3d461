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

  describe('saved plans (plan --output, apply --plan)', () => {
    const inUsePolicy = () =>
      file(
        'in-use.yml',
        [
          'regions:',
          '  sources: [us-east-1]',
          '  dr: [{ region: us-west-2, kmsKeyId: alias/ami-dr }]',
          'retention:',
          '  protectInUse: true',
          '  sources: { deregisterAfterDays: 90, keepLatest: 1 }',
          '',
        ].join('\n'),
      );
    const available = (t: Twin) =>
      [...t.state.region('us-east-1').images.values()].filter((i) => i.state === 'available').map((i) => i.imageId);
    const savedRemovals = (path: string): string[] =>
      (JSON.parse(readFileSync(path, 'utf8')) as SavedPlanDoc).plans.flatMap((p) =>
        p.actions.filter((a) => a.action === 'deregister').map((a) => a.imageId),
      );
    type SavedPlanDoc = { plans: { region: string; actions: { imageId: string; action: string }[] }[] };

    it('round trip: apply --plan removes exactly what plan --output saved', async () => {
      const t = await twinWith(eightOld);
      const policy = removeAllButOne();
      const out = join(tmp, 'round-trip.json');
      const planned = await run(['retention', 'plan', '--policy', policy, '--output', out]);
      expect(planned.code).toBe(0);
      expect(planned.stderr).toContain(
        `plan saved to ${out}: 0 deprecations, 7 removals in 2 regions; apply exactly this with: ami-dr retention apply --plan ${out}`,
      );
      const doc = JSON.parse(readFileSync(out, 'utf8'));
      expect(doc).toMatchObject({
        schemaVersion: 1,
        accountId: t.accountId,
        regions: ['us-east-1', 'us-west-2'],
        policy: { name: 'default', version: expect.stringMatching(/^[0-9a-f]{8}$/) },
        fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      });
      expect(doc.plans[0].actions[1]).toMatchObject({ action: 'deregister', rule: 'deregister-after-days' });
      expect(available(t)).toHaveLength(8);

      const applied = await run(['retention', 'apply', '--policy', policy, '--plan', out, '--json']);
      expect(applied.code).toBe(0);
      const result = JSON.parse(applied.stdout);
      expect(result.savedPlan).toEqual({ file: out, now: doc.now, fingerprint: doc.fingerprint });
      const removed = result.regions.flatMap((r: { removed: { imageId: string }[] }) =>
        r.removed.map((x) => x.imageId),
      );
      expect(removed.sort()).toEqual(savedRemovals(out).sort());
      expect(result.regions.map((r: { skipped: unknown[] }) => r.skipped)).toEqual([[], []]);
      expect(available(t)).toHaveLength(1);
    });

    it('refuses, as a whole, a plan made for another account (exit 2), removing nothing', async () => {
      const t = await twinWith(eightOld);
      const policy = removeAllButOne();
      const out = join(tmp, 'other-account.json');
      expect((await run(['retention', 'plan', '--policy', policy, '--output', out])).code).toBe(0);
      writeFileSync(
        out,
        readFileSync(out, 'utf8').replace(`"accountId": "${t.accountId}"`, '"accountId": "444455556666"'),
      );
      const r = await run(['retention', 'apply', '--policy', policy, '--plan', out]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim()).toBe(
        `ami-dr: error: ${out}: the plan was made for account 444455556666, not ${t.accountId}: nothing applied`,
      );
      expect(available(t)).toHaveLength(8);
    });

    it('refuses a plan made with another version of the policy (exit 2)', async () => {
      await twinWith(eightOld);
      const out = join(tmp, 'old-policy.json');
      expect((await run(['retention', 'plan', '--policy', removeAllButOne(), '--output', out])).code).toBe(0);
      const changed = policyFile('keep2.yml', '{ deregisterAfterDays: 90, keepLatest: 2 }');
      const r = await run(['retention', 'apply', '--policy', changed, '--plan', out]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /the plan was made with policy default version [0-9a-f]{8}, not default version [0-9a-f]{8}: nothing applied; make a new plan\n/,
      );
    });

    it('skips, with its reason, an image that came into use after the plan; later, one gone meanwhile', async () => {
      const t = await twinWith(eightOld);
      const policy = inUsePolicy();
      const out = join(tmp, 'in-use.json');
      expect((await run(['retention', 'plan', '--policy', policy, '--output', out])).code).toBe(0);
      const [busy, ...rest] = savedRemovals(out);
      const instance = t.seed.instance('us-east-1', { imageId: busy as string });

      const text = await run(['retention', 'apply', '--policy', policy, '--plan', out]);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('skipped from the saved plan (1):');
      expect(text.stdout).toMatch(
        new RegExp(`${busy}\\s+app-1\\.0\\.\\d\\s+remove\\s+referenced by instance ${instance} \\(referenced\\)`),
      );
      // An instance is not an image: the images are as planned.
      expect(text.stdout).not.toContain('the images changed since the plan was made');
      expect(available(t)).toContain(busy);
      for (const id of rest) expect(available(t)).not.toContain(id);

      // Applied again: the removed ones are gone, the one in use is still skipped; nothing more is removed.
      const again = await run(['retention', 'apply', '--policy', policy, '--plan', out, '--json']);
      expect(again.code).toBe(0);
      const [east] = JSON.parse(again.stdout).regions;
      expect(east.removed).toEqual([]);
      expect(east.inventoryChanged).toBe(true);
      expect(east.skipped).toContainEqual(
        expect.objectContaining({ imageId: busy, action: 'deregister', rule: 'referenced', reason: 'referenced' }),
      );
      expect(east.skipped.filter((s: { reason: string }) => s.reason === 'gone')).toHaveLength(rest.length);
    });

    it.each([
      ['not JSON', '{ "schemaVersion": 1, ', /^ami-dr: error: .*bad-1\.json is not JSON: /],
      [
        'not a plan',
        '{ "schemaVersion": 1, "accountId": "x" }',
        /^ami-dr: error: .*bad-2\.json is not an ami-dr retention plan: /,
      ],
    ])('a plan file that is %s is a one-line error (exit 2)', async (_what, text, message) => {
      await twinWith(eightOld);
      const name = _what === 'not JSON' ? 'bad-1.json' : 'bad-2.json';
      const r = await run(['retention', 'apply', '--policy', removeAllButOne(), '--plan', file(name, text)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });

    it('--output goes with plan, --plan with apply', async () => {
      const a = await run(['retention', 'apply', '--policy', removeAllButOne(), '--output', 'x.json']);
      expect(a.code).toBe(2);
      expect(a.stderr).toContain('--output goes with plan');
      const b = await run(['retention', 'plan', '--policy', removeAllButOne(), '--plan', 'x.json']);
      expect(b.code).toBe(2);
      expect(b.stderr).toContain('--plan goes with apply');
    });
  });
});
