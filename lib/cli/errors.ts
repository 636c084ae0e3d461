/** Exit statuses of the `ami-dr` command (documented in the README). */
export const EXIT = {
  ok: 0,
  /** The operation failed, found problems, or (with --fail-on-gap) found images not ready. */
  failure: 1,
  /** Bad usage: unknown command or option, missing argument; or a policy file that cannot be read or is invalid. */
  usage: 2,
  /** AWS could not be reached or refused the credentials. */
  aws: 3,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** The user typed something the command does not accept; shown with a pointer to --help. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A failure the command has already explained; carries its exit status. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
  }
}

const AWS_ACCESS_ERRORS = new Set([
  'CredentialsProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'AuthFailure',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
]);
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN', 'TimeoutError']);

/** Which exit status an error means, and the one line that explains it. */
export function describeError(error: unknown): { exitCode: number; message: string } {
  if (error instanceof UsageError) return { exitCode: EXIT.usage, message: error.message };
  if (error instanceof CommandError) return { exitCode: error.exitCode, message: error.message };
  const e = error as
    { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const name = e?.name ?? '';
  const message = e?.message ?? String(error);
  if (name === 'PolicyError') return { exitCode: EXIT.usage, message };
  if (/^(cannot read policy file|policy file .* is not valid YAML)/.test(message))
    return { exitCode: EXIT.usage, message };
  if (AWS_ACCESS_ERRORS.has(name))
    return { exitCode: EXIT.aws, message: `AWS refused the request (${name}): ${message}` };
  const code = e?.code ?? (error as { cause?: { code?: string } })?.cause?.code ?? '';
  if (NETWORK_ERRORS.has(code) || NETWORK_ERRORS.has(name)) {
    return {
      exitCode: EXIT.aws,
      message: `cannot reach AWS (${code || name}): ${message}. Check AWS_ENDPOINT_URL, AWS_REGION and the network`,
    };
  }
  if (e?.$metadata && name) return { exitCode: EXIT.failure, message: `${name}: ${message}` };
  return { exitCode: EXIT.failure, message };
}
