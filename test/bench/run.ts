import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * `npm run bench [name…]`: runs every test/bench/<name>.ts that exports `bench()` and prints its figures.
 * Benches are measurements, not pass/fail tests; each states its own targets in its figures.
 */

type Bench = () => Promise<Record<string, string | number>>;

// The benches talk to the local twin only: the same fake credentials and quiet SDK as the tests.
await import('../setup.ts');

const dir = import.meta.dirname;
const only = process.argv.slice(2);
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.d.ts'))
  .map((f) => basename(f, '.ts'))
  .filter((name) => !only.length || only.includes(name))
  .sort();

if (only.length && names.length !== only.length) {
  console.error(`unknown bench: ${only.filter((n) => !names.includes(n)).join(', ')}`);
  process.exit(2);
}

let failed = 0;
for (const name of names) {
  const module = (await import(pathToFileURL(join(dir, `${name}.ts`)).href)) as { bench?: Bench };
  if (typeof module.bench !== 'function') continue;
  console.log(`\n## ${name}`);
  const started = performance.now();
  try {
    const figures = await module.bench();
    const width = Math.max(0, ...Object.keys(figures).map((k) => k.length));
    for (const [key, value] of Object.entries(figures)) console.log(`  ${key.padEnd(width)}  ${value}`);
    console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failed++;
    console.log(`  failed: ${(error as Error).stack ?? String(error)}`);
  }
}
process.exitCode = failed ? 1 : 0;
