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
 * Per function: the packaged bundle's size (raw, gzip; with its chunks) and cold import cost (median of fresh node
 * processes), against a default esbuild bundle of the same handler (ESM, platform node, CommonJS-first main fields,
 * not minified). Targets: every bundle ≤ 1 MB, importing in ≤ 60% of the default bundle's CPU time. The ratio is of
 * the import's CPU time (user + system): on a 2-core machine shared with other work, wall time mostly measures the
 * wait for a core; the wall-clock medians are printed beside it.
 */

const RUNS = 11;
const LIMIT_BYTES = 1024 * 1024;
const BANNER = "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";
const run = promisify(execFile);

const LOADER = `
const cpu = process.cpuUsage();
const started = performance.now();
await import(process.argv[2]);
const wall = performance.now() - started;
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ cpu: (used.user + used.system) / 1000, wall }));
`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface ImportCost {
  cpu: number;
  wall: number;
}

async function importCost(loader: string, bundle: string, env: Record<string, string>): Promise<ImportCost> {
  const { stdout } = await run(process.execPath, [loader, bundle], { env, timeout: 60_000 });
  return JSON.parse(stdout) as ImportCost;
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
      const ours: ImportCost[] = [];
      const theirs: ImportCost[] = [];
      for (let i = 0; i < RUNS; i++) {
        ours.push(await importCost(loader, packaged, env));
        theirs.push(await importCost(loader, baseline, env));
      }
      const cpu = { ours: median(ours.map((c) => c.cpu)), theirs: median(theirs.map((c) => c.cpu)) };
      const wall = { ours: median(ours.map((c) => c.wall)), theirs: median(theirs.map((c) => c.wall)) };
      // The bundle with its chunks (what it reaches only through import(), loaded when first needed).
      const entry = readFileSync(packaged);
      const files = names.map((name) => readFileSync(join(dir, name)));
      const raw = files.reduce((sum, file) => sum + file.length, 0);
      const gzip = files.reduce((sum, file) => sum + gzipSync(file).length, 0);
      const ratio = cpu.ours / cpu.theirs;
      largest = Math.max(largest, raw);
      worstRatio = Math.max(worstRatio, ratio);
      figures[`${fn.key} size`] =
        `${(raw / 1024).toFixed(0)} KB raw, ${(gzip / 1024).toFixed(0)} KB gzip ` +
        `(entry ${(entry.length / 1024).toFixed(0)} KB + ${names.length - 1} chunks; ` +
        `default bundle ${(readFileSync(baseline).length / 1024).toFixed(0)} KB)`;
      figures[`${fn.key} cold import`] =
        `${cpu.ours.toFixed(0)} ms CPU vs ${cpu.theirs.toFixed(0)} ms default = ${(ratio * 100).toFixed(0)}% ` +
        `(wall ${wall.ours.toFixed(0)} vs ${wall.theirs.toFixed(0)} ms)`;
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
