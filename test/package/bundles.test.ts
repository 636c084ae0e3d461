import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackaged, importEnvironment, lambdaResources, listedFunctions, type Template } from './packaged.ts';
import { extractZip } from './zip.ts';

/**
 * Each function's zip, unpacked as Lambda unpacks it and imported the way the nodejs22.x runtime imports an `.mjs`
 * handler: in a fresh process, from an ES module, with no node_modules around and the function's environment.
 * (`node -e` would hide a missing `require` in an ESM bundle: `require` is a global there.)
 */

let template: Template;
const work = mkdtempSync(join(tmpdir(), 'ami-dr-bundles-'));
const run = promisify(execFile);

beforeAll(async () => {
  template = await ensurePackaged();
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

const IMPORT = `
const started = performance.now();
const mod = await import(process.argv[2]);
process.stdout.write(JSON.stringify({ handler: typeof mod.handler, ms: performance.now() - started }));
`;

describe('built bundles', () => {
  const functions = listedFunctions();

  it.each(functions.map((f) => [f.key, f] as const))(
    '%s: the zip holds its ESM bundle and nothing else',
    (_key, fn) => {
      const dir = join(work, fn.key);
      const names = extractZip(fn.zip, dir);
      expect(names).toEqual([fn.bundle]);
    },
  );

  // Lambda parses every byte at each cold start; what the SDK's schemas and the clients add must stay below this.
  it.each(functions.map((f) => [f.key, f] as const))('%s: the bundle is at most 1,024 KB', (_key, fn) => {
    const dir = join(work, `${fn.key}-size`);
    extractZip(fn.zip, dir);
    const kb = statSync(join(dir, fn.bundle)).size / 1024;
    expect(kb, `${fn.bundle}: ${kb.toFixed(0)} KB`).toBeLessThanOrEqual(1024);
  });

  it.each(functions.map((f) => [f.key, f] as const))(
    '%s: imports in a fresh node process and exports a handler function',
    async (_key, fn) => {
      const dir = join(work, `${fn.key}-task`);
      extractZip(fn.zip, dir);
      const loader = join(dir, 'load.mjs');
      writeFileSync(loader, IMPORT);
      const lambda = lambdaResources(template).get(fn.key);
      expect(lambda, `${fn.key} in the template`).toBeDefined();
      const env = importEnvironment(lambda!.properties);
      const { stdout } = await run(process.execPath, [loader, join(dir, fn.bundle)], {
        cwd: dir,
        env,
        timeout: 60_000,
      });
      expect(JSON.parse(stdout)).toMatchObject({ handler: 'function' });
    },
    90_000,
  );
});
