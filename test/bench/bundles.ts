import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { ensurePackaged, importEnvironment, lambdaResources, listedFunctions, ROOT } from '../package/packaged.ts';
import { extractZip } from '../package/zip.ts';

/**
 * Per function: the packaged bundle's size (raw, gzip; with its chunks) and cold import time (median of fresh node processes), against
 * a default esbuild bundle of the same handler (ESM, platform node, CommonJS-first main fields, not minified).
 * Targets: every bundle ≤ 1 MB, importing in ≤ 60% of the default bundle's time.
 */

const RUNS = 7;
const LIMIT_BYTES = 1024 * 1024;
const BANNER = "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";
const run = promisify(execFile);

const LOADER = `
const started = performance.now();
await import(process.argv[2]);
process.stdout.write(String(performance.now() - started));
`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function importMs(loader: string, bundle: string, env: Record<string, string>): Promise<number> {
  const { stdout } = await run(process.execPath, [loader, bundle], { env, timeout: 60_000 });
  return Number(stdout);
}

export async function bench(): Promise<Record<string, string | number>> {
  const template = await ensurePackaged();
  const work = mkdtempSync(join(tmpdir(), 'ami-dr-bench-bundles-'));
  const figures: Record<string, string | number> = {};
  let largest = 0;
  let worstRatio = 0;
  try {
    const loader = join(work, 'load.mjs');
    writeFileSync(loader, LOADER);
    for (const fn of listedFunctions()) {
      const dir = join(work, fn.key);
      const names = extractZip(fn.zip, dir);
      const packaged = join(dir, fn.bundle);
      const baseline = join(work, `${fn.key}.default.mjs`);
      await build({
        absWorkingDir: ROOT,
        entryPoints: [fn.source],
        bundle: true,
        format: 'esm',
        platform: 'node',
        banner: { js: BANNER },
        outfile: baseline,
        logLevel: 'silent',
      });
      const env = importEnvironment(lambdaResources(template).get(fn.key)!.properties);
      // Interleaved, so load from elsewhere on the machine falls on both alike.
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        ours.push(await importMs(loader, packaged, env));
        theirs.push(await importMs(loader, baseline, env));
      }
      // The bundle with its chunks (what it reaches only through import(), loaded when first needed).
      const entry = readFileSync(packaged);
      const files = names.map((name) => readFileSync(join(dir, name)));
      const raw = files.reduce((sum, file) => sum + file.length, 0);
      const gzip = files.reduce((sum, file) => sum + gzipSync(file).length, 0);
      const ratio = median(ours) / median(theirs);
      largest = Math.max(largest, raw);
      worstRatio = Math.max(worstRatio, ratio);
      figures[`${fn.key} size`] =
        `${(raw / 1024).toFixed(0)} KB raw, ${(gzip / 1024).toFixed(0)} KB gzip ` +
        `(entry ${(entry.length / 1024).toFixed(0)} KB + ${names.length - 1} chunks; ` +
        `default bundle ${(readFileSync(baseline).length / 1024).toFixed(0)} KB)`;
      figures[`${fn.key} cold import`] =
        `${median(ours).toFixed(0)} ms vs ${median(theirs).toFixed(0)} ms default = ${(ratio * 100).toFixed(0)}%`;
    }
    figures['largest bundle'] =
      `${(largest / 1024).toFixed(0)} KB (target ≤ 1024 KB: ${largest <= LIMIT_BYTES ? 'met' : 'NOT met'})`;
    figures['worst import ratio'] =
      `${(worstRatio * 100).toFixed(0)}% (target ≤ 60%: ${worstRatio <= 0.6 ? 'met' : 'NOT met'})`;
    figures['runs per median'] = RUNS;
    return figures;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
