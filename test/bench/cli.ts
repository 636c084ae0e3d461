import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN, ROOT } from '../cli/run.ts';

/**
 * How long `ami-dr --help` and `ami-dr validate --help` take to start, as a multiple of starting Node itself
 * (`node -e 0`): medians of fresh processes, interleaved so load from elsewhere on the machine falls on all alike.
 * Target: ≤ 4× for both.
 */

const RUNS = 7;
const TARGET = 4;
const run = promisify(execFile);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function elapsedMs(args: string[]): Promise<number> {
  const started = performance.now();
  await run(process.execPath, args, { cwd: ROOT, timeout: 60_000 });
  return performance.now() - started;
}

export async function bench(): Promise<Record<string, string | number>> {
  // The build as `npm install` leaves it, of the sources as they are now (bin/ami-dr.js would otherwise use tsx).
  await run('npm', ['run', '--silent', 'build'], { cwd: ROOT });

  const cases = { node: ['-e', '0'], help: [BIN, '--help'], validateHelp: [BIN, 'validate', '--help'] };
  const times: Record<keyof typeof cases, number[]> = { node: [], help: [], validateHelp: [] };
  await elapsedMs(cases.help); // warm the file cache
  for (let i = 0; i < RUNS; i++) {
    for (const [name, args] of Object.entries(cases)) times[name as keyof typeof cases].push(await elapsedMs(args));
  }
  const node = median(times.node);
  const help = median(times.help);
  const validateHelp = median(times.validateHelp);
  const verdict = (ratio: number) => (ratio <= TARGET ? `(target ≤ ${TARGET})` : `(over the target of ${TARGET})`);
  return {
    'node -e 0': `${node.toFixed(0)} ms`,
    'ami-dr --help': `${help.toFixed(0)} ms`,
    'ami-dr validate --help': `${validateHelp.toFixed(0)} ms`,
    'cli help ratio': `${(help / node).toFixed(2)} ${verdict(help / node)}`,
    'cli validate help ratio': `${(validateHelp / node).toFixed(2)} ${verdict(validateHelp / node)}`,
  };
}
