import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Policy } from '../domain/policy.ts';
import {
  DEFAULT_POLICY_FILE,
  GLOBAL_OPTIONS,
  type CommandContext,
  type CommandSpec,
  type GlobalFlags,
  type OptionSpec,
  type ParsedValues,
  type Session,
} from './command.ts';
import { describeError, EXIT, UsageError } from './errors.ts';
import { Output, type Stream } from './output.ts';
import { COMMANDS, type RegisteredCommand } from './registry.ts';
import { awsErrorName } from '../domain/errors.ts';

export interface CliIo {
  stdout: Stream;
  stderr: Stream;
  env: NodeJS.ProcessEnv;
  /** Aborted when the user interrupts (bin/ami-dr.js: SIGINT, SIGTERM); the command then ends with EXIT.interrupted. */
  signal?: AbortSignal;
}

/**
 * The `ami-dr` command. `argv` is what follows the program name; the result is the exit status (see EXIT and the
 * README). Never throws: every error becomes one line on stderr (a stack trace too with --debug).
 */
export async function main(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  // A support notice the SDK prints at every run on Node 20: noise on a command's stderr.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const wantsJson = argv.includes('--json');
  const debug = argv.includes('--debug');
  const out = new Output({ stdout: io.stdout, stderr: io.stderr, env: io.env, json: wantsJson });
  const cleanups: (() => Promise<void> | void)[] = [];
  let commandName: string | undefined;
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      const topic = first === 'help' ? rest[0] : undefined;
      if (topic) {
        const command = findCommand(topic);
        out.print(commandHelp(command));
      } else {
        out.print(programHelp());
      }
      return first === undefined ? EXIT.usage : EXIT.ok;
    }
    if (first === '--version' || first === '-v') {
      out.print(await version());
      return EXIT.ok;
    }
    if (first.startsWith('-')) throw new UsageError(`expected a command before ${first}`);
    const command = findCommand(first);
    commandName = command.name;

    const parsed = parseCommandArgs(command, rest);
    if (parsed.values.help) {
      out.print(commandHelp(command));
      return EXIT.ok;
    }
    const flags: GlobalFlags = {
      policy: parsed.values.policy as string | undefined,
      local: Boolean(parsed.values.local),
      json: Boolean(parsed.values.json),
      debug: Boolean(parsed.values.debug),
    };
    // Loaded only now, with the policy's schema: `--help` and a usage error need neither.
    const [implementation, { loadPolicyFile }] = await Promise.all([command.load(), import('../policy-file.ts')]);
    const signal = io.signal ?? new AbortController().signal;
    const ctx = createContext(out, io.env, flags, cleanups, loadPolicyFile, signal);
    const running = implementation.run(ctx, parsed.values, parsed.positionals);
    const code = command.stopsCleanly ? await running : await abandonOnAbort(running, signal);
    if (code === EXIT.interrupted) out.note(out.paint('yellow', 'ami-dr: interrupted', 'err'));
    return code;
  } catch (error) {
    const { exitCode, message } = describeError(error);
    const hint =
      error instanceof UsageError
        ? ` (see 'ami-dr ${error.command ?? commandName ?? ''}${(error.command ?? commandName) ? ' ' : ''}--help')`
        : '';
    if (out.json) out.printJson({ error: { message, exitCode, name: awsErrorName(error) ?? 'Error' } });
    out.note(`${out.paint('red', 'ami-dr: error:', 'err')} ${message}${hint}`);
    if (debug && error instanceof Error && error.stack) out.note(error.stack);
    return exitCode;
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        if (debug) out.note(`cleanup failed: ${(error as Error).message}`);
      }
    }
  }
}

/** The command's result, or EXIT.interrupted as soon as the signal is aborted (the command is left to the exit). */
function abandonOnAbort(running: Promise<number>, signal: AbortSignal): Promise<number> {
  if (signal.aborted) return Promise.resolve(EXIT.interrupted);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(EXIT.interrupted);
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => signal.removeEventListener('abort', onAbort);
    running.then(
      (code) => {
        settle();
        resolve(code);
      },
      (error: unknown) => {
        settle();
        reject(error);
      },
    );
  });
}

function findCommand(name: string): RegisteredCommand {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const near = COMMANDS.find((c) => c.name.startsWith(name.slice(0, 3)));
    throw new UsageError(
      `unknown command '${name}'${near ? `; did you mean '${near.name}'?` : ''} (commands: ${COMMANDS.map((c) => c.name).join(', ')})`,
      '',
    );
  }
  return command;
}

function parseCommandArgs(command: CommandSpec, args: string[]): { values: ParsedValues; positionals: string[] } {
  const all: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...command.options };
  const options = Object.fromEntries(
    Object.entries(all).map(([name, spec]) => [
      name,
      { type: spec.type, ...(spec.short ? { short: spec.short } : {}) },
    ]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(cleanParseError((error as Error).message), command.name);
  }
  const values = parsed.values as ParsedValues;
  if (values.help) return { values, positionals: parsed.positionals };
  const names = command.positionals ?? [];
  const required = names.filter((n) => !n.endsWith('?')).length;
  if (parsed.positionals.length < required) {
    throw new UsageError(
      `missing ${names
        .slice(parsed.positionals.length)
        .filter((n) => !n.endsWith('?'))
        .map((n) => `<${n}>`)
        .join(' ')}`,
      command.name,
    );
  }
  if (parsed.positionals.length > names.length) {
    throw new UsageError(`unexpected argument '${parsed.positionals[names.length]}'`, command.name);
  }
  return { values, positionals: parsed.positionals };
}

/** node:util's messages mention "parseArgs" and suggest `--` ; say it the way a user typed it. */
function cleanParseError(message: string): string {
  return message
    .replace(/\. To specify a positional argument starting with a '-'.*$/s, '')
    .replace(/^Unknown option '(.+?)'.*$/s, "unknown option '$1'")
    .replace(/^Option '(.+?)' argument missing$/s, "option '$1' needs a value")
    .replace(/^Option '(.+?) <value>' argument missing$/s, "option '$1' needs a value");
}

function createContext(
  out: Output,
  env: NodeJS.ProcessEnv,
  flags: GlobalFlags,
  cleanups: (() => Promise<void> | void)[],
  loadPolicyFile: (path: string) => Readonly<Policy>,
  signal: AbortSignal,
): CommandContext {
  let policy: Readonly<Policy> | undefined;
  let session: Promise<Session> | undefined;
  const ctx: CommandContext = {
    out,
    env,
    flags,
    policy() {
      policy ??= loadPolicyFile(flags.policy ?? DEFAULT_POLICY_FILE);
      return policy;
    },
    session(options = {}) {
      session ??= import('./session.ts').then(({ openSession }) => openSession(ctx, options));
      return session;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
    signal,
  };
  return ctx;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => [
    `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` <${spec.valueName ?? 'value'}>` : ''}`,
    spec.description,
  ]);
  const width = Math.max(...rows.map(([left]) => left?.length ?? 0));
  return rows.map(([left, right]) => `  ${(left ?? '').padEnd(width)}  ${right}`);
}

export function commandHelp(command: CommandSpec): string {
  return [
    `Usage: ${command.usage}`,
    '',
    command.description ?? command.summary,
    '',
    ...(Object.keys(command.options).length ? ['Options:', ...optionLines(command.options), ''] : []),
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

export function programHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: ami-dr <command> [options]',
    '',
    'Keeps EC2 AMIs recoverable in DR regions and accounts free of aged images.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Environment: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL (e.g. a twin from `ami-dr twin`), NO_COLOR.',
    'Exit status: 0 ok, 1 failure or readiness gap, 2 bad usage or invalid policy, 3 AWS unreachable or access refused.',
    '',
    'Examples:',
    '  ami-dr demo',
    '  ami-dr validate --policy ami-dr.config.yml',
    '  ami-dr readiness --format html --output readiness.html',
    '  ami-dr help readiness',
    '',
  ].join('\n');
}

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const { packageRoot } = await import('../package-root.ts');
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as {
    version?: string;
  };
  return `ami-dr ${pkg.version ?? 'unknown'}`;
}
