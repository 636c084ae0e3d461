#!/usr/bin/env node
// The `ami-dr` command. The CLI is TypeScript run in place (tsx), so the same source serves the CLI, the local
// twin and the Lambda bundles; this wrapper only registers the loader and hands over the arguments.
import { register } from 'tsx/esm/api';

register();
// ami-dr supports Node.js 20.19+; the SDK's notice that its future releases will need Node 22 is not for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

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
  const { main } = await import('../lib/cli/main.ts');
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
