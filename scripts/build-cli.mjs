// Builds the `ami-dr` command into dist/cli/ (gitignored): JavaScript, so that it starts without compiling
// TypeScript on every run. npm's `prepare` runs this on `npm install` and `npm ci` (and so `npm start` and
// `npm test`); bin/ami-dr.js uses the build while it is newer than every source it was built from.
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'cli');
/** Read by bin/ami-dr.js to tell a current build from a stale one. */
export const MANIFEST = join(OUT, 'build.json');

export async function buildCli() {
  const started = Date.now();
  // No build.json while building: a run in the meantime takes the sources, never a half-written build.
  rmSync(OUT, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'lib/cli/main.ts' },
    outdir: OUT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Each command (and the twin, the SDK clients, the policy schema) is its own chunk, imported when it runs:
    // `ami-dr --help` loads the main chunk alone.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    // As serverless.yml's bundles: module-first, so the SDK's ESM builds are used where they exist.
    mainFields: ['module', 'main'],
    // CommonJS dependencies call require() for Node built-ins; an ESM bundle has no require unless given one. The
    // import is renamed because a chunk also holds our own modules, and local/twin/s3.ts imports createRequire.
    banner: {
      js: "import { createRequire as __createRequire } from 'module'; const require = __createRequire(import.meta.url);",
    },
    // The twin patches s3rver's account registry through require(); it must be the very module s3rver uses.
    external: ['s3rver'],
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs)
    .filter((path) => !path.includes('node_modules/'))
    .sort();
  writeFileSync(MANIFEST, `${JSON.stringify({ builtAt: started, inputs }, null, 2)}\n`);
  return { out: relative(ROOT, OUT), inputs: inputs.length, ms: Date.now() - started };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { out, inputs, ms } = await buildCli();
  if (!process.argv.includes('--quiet')) console.log(`built ${out}/ from ${inputs} sources in ${ms} ms`);
}
