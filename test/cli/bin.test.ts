import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, ROOT } from './run.ts';

/**
 * bin/ami-dr.js runs the build in dist/cli only while it is newer than every source it was built from; otherwise
 * the sources themselves (through tsx). Checked on a copy of the wrapper in a scratch package whose "build" and
 * "sources" say which of them ran.
 */
describe('bin/ami-dr.js', () => {
  let dir: string;
  const source = () => join(dir, 'lib', 'cli', 'main.ts');

  beforeEach(() => {
    // Prepare
    dir = mkdtempSync(join(tmpdir(), 'ami-dr-bin-'));
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
    mkdirSync(join(dir, 'lib', 'cli'), { recursive: true });
    copyFileSync(BIN, join(dir, 'bin', 'ami-dr.js'));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    const main = (from: string) =>
      `export async function main(argv${from.endsWith('.ts') ? ': string[]' : ''}) { console.log('${from}', argv.join(' ')); return 0; }\n`;
    writeFileSync(join(dir, 'dist', 'cli', 'main.js'), main('build'));
    writeFileSync(source(), main('sources.ts'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const built = (at: number, inputs = ['lib/cli/main.ts']) =>
    writeFileSync(join(dir, 'dist', 'cli', 'build.json'), JSON.stringify({ builtAt: at, inputs }));
  const run = () => spawnSync(process.execPath, [join(dir, 'bin', 'ami-dr.js'), '--help'], { encoding: 'utf8' });

  it('runs the build while it is newer than its sources', () => {
    built(Date.now() + 60_000);
    const { stdout, status } = run();
    expect(stdout).toBe('build --help\n');
    expect(status).toBe(0);
  });

  it('runs the sources once one of them changed after the build, never the stale build', () => {
    const at = Date.now();
    built(at);
    utimesSync(source(), new Date(at + 1000), new Date(at + 1000));
    expect(run().stdout).toBe('sources.ts --help\n');
  });

  it('runs the sources when a source of the build is gone, or when nothing was built', () => {
    built(Date.now() + 60_000, ['lib/cli/main.ts', 'lib/cli/removed.ts']);
    expect(run().stdout).toBe('sources.ts --help\n');
    rmSync(join(dir, 'dist'), { recursive: true });
    expect(run().stdout).toBe('sources.ts --help\n');
  });
});
