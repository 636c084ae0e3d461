import type { Clients } from '../aws/clients.ts';
import type { Policy } from '../domain/policy.ts';
import type { Output } from './output.ts';

export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** Shown in --help. */
  description: string;
  /** For string options: the placeholder in --help (`--format <table|json>`). */
  valueName?: string;
  default?: string | boolean;
}

/** The policy a command reads when no --policy is given. */
export const DEFAULT_POLICY_FILE = 'ami-dr.config.yml';

/** Options every command takes. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  policy: { type: 'string', valueName: 'file', description: 'policy file (default ./ami-dr.config.yml)' },
  local: { type: 'boolean', description: 'run against a local twin of AWS, started and seeded for this run' },
  json: { type: 'boolean', description: 'print one JSON document on stdout (stable, for scripts)' },
  debug: { type: 'boolean', description: 'show stack traces and SDK errors in full' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export interface GlobalFlags {
  policy?: string;
  local: boolean;
  json: boolean;
  debug: boolean;
}

export type ParsedValues = Record<string, string | boolean | undefined>;

/** Where a command's AWS calls go: AWS itself, an endpoint in AWS_ENDPOINT_URL, or a twin this run started. */
export interface Session {
  clients: Clients;
  accountId: string;
  /** The home region: --region, AWS_REGION, or the policy's first source region. */
  region: string;
  /** The replication state machine of a source region (deployed once per source region). */
  stateMachineArnFor(sourceRegion: string): string;
  /** `now` for the domain: the twin's clock on a local run. */
  now(): number;
  /** Waits on that clock (a virtual clock just moves). */
  sleep(ms: number): Promise<void>;
  /** Set on --local runs. */
  local?: LocalSession;
}

export interface LocalSession {
  /** Waits until events, executions and due copies have settled. */
  waitForIdle(): Promise<void>;
  endpoint: string;
}

export interface SessionOptions {
  region?: string;
  /** --local: sign the session's calls with this function's role from serverless.yml, as the deployed job would. */
  role?: 'retention' | 'readiness' | 'drill';
}

export interface CommandContext {
  out: Output;
  env: NodeJS.ProcessEnv;
  flags: GlobalFlags;
  /** The policy from --policy (or ./ami-dr.config.yml); loaded once; throws a PolicyError naming every bad field. */
  policy(): Readonly<Policy>;
  /** Connects (or starts the local twin) on first use; on the twin, `role` names the function whose role calls. */
  session(options?: SessionOptions): Promise<Session>;
  /** Runs when the command ends, however it ends. */
  onCleanup(fn: () => Promise<void> | void): void;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM. Only commands marked `stopsCleanly` need to look at it. */
  signal: AbortSignal;
}

/**
 * What `--help` and the argument parser know of a command (lib/cli/registry.ts). Its implementation, which imports
 * the SDK, the workflows or the twin, is loaded only when the command runs.
 */
export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  /** Positional argument names, for --help and the count check; a trailing `?` marks one optional. */
  positionals?: string[];
  /**
   * The command stops by itself soon after ctx.signal is aborted (finishing what is in flight, then reporting), and
   * main waits for it and returns its exit status (EXIT.interrupted when it stopped short). Other commands are
   * abandoned at once on an interrupt (their cleanups still run), with EXIT.interrupted.
   */
  stopsCleanly?: boolean;
}

/** A command's implementation: lib/cli/commands/<name>.ts. */
export interface Command {
  run(ctx: CommandContext, values: ParsedValues, positionals: string[]): Promise<number>;
}
