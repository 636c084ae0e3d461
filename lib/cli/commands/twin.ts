import { existsSync } from 'node:fs';
import { DEFAULT_POLICY_FILE, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';

export const twinCommand: Command = {
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
