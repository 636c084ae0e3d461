import { existsSync } from 'node:fs';
import { DEFAULT_POLICY_FILE, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';

export const twinCommand: Command = {
  name: 'twin',
  summary: 'start the local twin of the AWS APIs ami-dr uses, and print its endpoint',
  usage: 'ami-dr twin [--port port]',
  description:
    'Runs the local twin (EC2, KMS, STS, SNS, Auto Scaling, Step Functions, S3) on 127.0.0.1 until Ctrl-C, in real\n' +
    'time, and ami-dr on it as if deployed under the policy (--policy, default ./ami-dr.config.yml; without that\n' +
    'file, the AWS APIs alone): images created through it are replicated, and `ami-dr replicate` and\n' +
    "`readiness --reconcile` find their state machine. Seeded with the policy's alias keys in its DR regions and an\n" +
    'instance to image. Prints the environment that points the AWS SDKs, the AWS CLI and ami-dr at it.',
  options: {
    port: { type: 'string', valueName: 'port', description: 'port to listen on (default 4599; 0 picks a free one)' },
  },
  examples: [
    'ami-dr twin',
    'ami-dr twin --port 0 --policy prod.yml',
    'ami-dr readiness   # in another shell, with the printed lines exported',
  ],
  // Ctrl-C is how the twin is stopped: it ends with exit 0.
  stopsCleanly: true,
  async run(ctx, values) {
    const port = values.port === undefined ? undefined : Number(values.port);
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535))
      throw new UsageError(`--port must be a port number, not '${String(values.port)}'`, 'twin');
    const { runTwinCommand } = await import('../../../local/runtime/twin-command.ts');
    // The default policy file is optional here: without one the twin serves the AWS APIs alone.
    const policy = ctx.flags.policy !== undefined || existsSync(DEFAULT_POLICY_FILE) ? ctx.policy() : undefined;
    return runTwinCommand({
      ...(port !== undefined ? { port } : {}),
      ...(policy ? { policy } : {}),
      out: (line) => ctx.out.print(line),
      signal: ctx.signal,
    });
  },
};
