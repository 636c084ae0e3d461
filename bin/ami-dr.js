#!/usr/bin/env node
// The `ami-dr` command. It runs the JavaScript build in dist/cli/ (made by scripts/build-cli.mjs, which npm's
// `prepare` runs on `npm install`/`npm ci`) while that build is newer than every source it was made from; otherwise,
// in a checkout whose sources changed since (or that was never built), it runs the TypeScript sources through tsx,
// as slow to start as that is. Why not rebuild here when stale: several ami-dr processes may start at once (the CLI
// tests do), and a wrapper that only reads never races another one writing; a stale build is never run either.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const BUILD = join(ROOT, 'dist', 'cli');

// ami-dr supports Node.js 20.19+; the SDK's notice that its future releases will need Node 22 is not for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** True when dist/cli was built after the last change to any source it bundles (a deleted source counts as one). */
function buildIsCurrent() {
  try {
    const { builtAt, inputs } = JSON.parse(readFileSync(join(BUILD, 'build.json'), 'utf8'));
    return inputs.every((path) => statSync(join(ROOT, path)).mtimeMs < builtAt);
  } catch {
    return false;
  }
}

const flush = (stream) => new Promise((resolve) => stream.write('', resolve));
const argv = process.argv.slice(2);
// The first Ctrl-C (or SIGTERM) asks the command to stop: `retention apply` finishes the calls in flight and reports
// what it did and what is left; a second one stops at once. Either way the exit status is 130.
const interrupt = new AbortController();
const onSignal = () => {
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
let code;
try {
  let main;
  if (buildIsCurrent()) {
    // Stack traces (--debug) name the TypeScript sources, not the bundle.
    if (argv.includes('--debug')) process.setSourceMapsEnabled(true);
    ({ main } = await import('../dist/cli/main.js'));
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import('../lib/cli/main.ts'));
  }
  code = await main(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: interrupt.signal,
  });
} catch (error) {
  process.stderr.write(`ami-dr: ${argv.includes('--debug') ? error?.stack : (error?.message ?? String(error))}\n`);
  code = 1;
}
await Promise.all([flush(process.stdout), flush(process.stderr)]);
// Exit explicitly: a command is done when main returns, whatever timers or sockets a library left behind.
process.exit(typeof code === 'number' ? code : 0);
