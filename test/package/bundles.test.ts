import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensurePackaged,
  importEnvironment,
  lambdaResources,
  listedFunctions,
  type ListedFunction,
  type Template,
} from './packaged.ts';
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

// Then the chunks, which the bundle loads only when it needs them (a credential provider other than the environment's).
const IMPORT = `
const started = performance.now();
const mod = await import(process.argv[2]);
const ms = performance.now() - started;
for (const chunk of process.argv.slice(3)) await import(chunk);
process.stdout.write(JSON.stringify({ handler: typeof mod.handler, ms, chunks: process.argv.length - 3 }));
`;

/** A chunk of the function's own: `functions/<name>.chunks/….mjs`, as lib/build/esbuild-plugins.cjs names them. */
const ownChunk = (fn: ListedFunction, name: string): boolean =>
  name.startsWith(`${fn.bundle.replace(/\.mjs$/, '')}.chunks/`) && name.endsWith('.mjs');

describe('built bundles', () => {
  const functions = listedFunctions();

  it.each(functions.map((f) => [f.key, f] as const))(
    '%s: the zip holds its ESM bundle, its own chunks and nothing else',
    (_key, fn) => {
      const dir = join(work, fn.key);
      const names = extractZip(fn.zip, dir);
      expect(names).toContain(fn.bundle);
      // Chunks are what the bundle reaches only through import(); another function's chunks never ride along.
      expect(names.filter((name) => name !== fn.bundle && !ownChunk(fn, name))).toEqual([]);
    },
  );

  // Lambda parses every byte it loads at a cold start; what the SDK's schemas and the clients add must stay below
  // this. Counted with the chunks, which a cold start may not load, so the bound holds whatever it loads.
  it.each(functions.map((f) => [f.key, f] as const))(
    '%s: the bundle and its chunks are at most 1,024 KB',
    (_key, fn) => {
      const dir = join(work, `${fn.key}-size`);
      const names = extractZip(fn.zip, dir);
      const kb = names.reduce((sum, name) => sum + statSync(join(dir, name)).size, 0) / 1024;
      expect(kb, `${fn.bundle} and its chunks: ${kb.toFixed(0)} KB`).toBeLessThanOrEqual(1024);
    },
  );

  it.each(functions.map((f) => [f.key, f] as const))(
    '%s: imports in a fresh node process and exports a handler function; its chunks import too',
    async (_key, fn) => {
      const dir = join(work, `${fn.key}-task`);
      const chunks = extractZip(fn.zip, dir).filter((name) => ownChunk(fn, name));
      const loader = join(dir, 'load.mjs');
      writeFileSync(loader, IMPORT);
      const lambda = lambdaResources(template).get(fn.key);
      expect(lambda, `${fn.key} in the template`).toBeDefined();
      const env = importEnvironment(lambda!.properties);
      const paths = [fn.bundle, ...chunks].map((name) => join(dir, name));
      const { stdout } = await run(process.execPath, [loader, ...paths], { cwd: dir, env, timeout: 60_000 });
      expect(JSON.parse(stdout)).toMatchObject({ handler: 'function', chunks: chunks.length });
    },
    90_000,
  );
});
