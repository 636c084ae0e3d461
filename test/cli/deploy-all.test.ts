import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './run.ts';

/** `npm run deploy:all`: one `serverless deploy` per region of the policy, the home region last. */

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'ami-dr-deploy-all-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const policyFile = join(tmp, 'three-sources.yml');
writeFileSync(
  policyFile,
  [
    'regions:',
    '  sources: [eu-central-1, us-east-1, ap-southeast-2]',
    '  dr:',
    '    - { region: us-west-2, kmsKeyId: alias/ami-dr }',
    '',
  ].join('\n'),
);

async function deployAll(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, AMI_DR_POLICY_FILE: undefined };
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'deploy:all', '--', ...args], {
      cwd: ROOT,
      env,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const commandLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('npx serverless deploy'));

describe('npm run deploy:all --dry-run', () => {
  it('prints one deploy per DR and source region, home (the first source region) last, and runs none', async () => {
    const r = await deployAll(['--stage', 'prod', '--policy', policyFile, '--dry-run']);

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('home region eu-central-1');
    expect(commandLines(r.stdout)).toEqual([
      'npx serverless deploy --stage prod --region us-west-2 --param home=eu-central-1',
      'npx serverless deploy --stage prod --region us-east-1 --param home=eu-central-1',
      'npx serverless deploy --stage prod --region ap-southeast-2 --param home=eu-central-1',
      'npx serverless deploy --stage prod --region eu-central-1 --param home=eu-central-1',
    ]);
  }, 90_000);

  it('takes --home, a region that need not be a source region, and passes further options on', async () => {
    const r = await deployAll([
      '--stage',
      'prod',
      '--policy',
      policyFile,
      '--home',
      'us-west-1',
      '--dry-run',
      '--',
      '--verbose',
    ]);

    expect(r.code).toBe(0);
    expect(commandLines(r.stdout)).toEqual([
      'npx serverless deploy --stage prod --region us-west-2 --param home=us-west-1 --verbose',
      'npx serverless deploy --stage prod --region eu-central-1 --param home=us-west-1 --verbose',
      'npx serverless deploy --stage prod --region us-east-1 --param home=us-west-1 --verbose',
      'npx serverless deploy --stage prod --region ap-southeast-2 --param home=us-west-1 --verbose',
      'npx serverless deploy --stage prod --region us-west-1 --param home=us-west-1 --verbose',
    ]);
  }, 90_000);

  it('refuses a home that is not a region, deploying nothing', async () => {
    const r = await deployAll(['--policy', policyFile, '--home', 'home', '--dry-run']);

    expect(r.code).toBe(2);
    expect(commandLines(r.stdout)).toEqual([]);
    expect(r.stderr).toContain('--home home is not a region');
  }, 90_000);
});
