/**
 * The AWS SDK names a service error after the service's error code (`InvalidAMIID.NotFound`,
 * `ExecutionAlreadyExists`, ...): the one place ami-dr reads that name, without trusting the error's shape.
 */
export function awsErrorName(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'name' in error && typeof error.name === 'string') return error.name;
  return undefined;
}

/** Whether `error` is an AWS error with one of these names. */
export function isAwsError(error: unknown, ...names: readonly string[]): boolean {
  const name = awsErrorName(error);
  return name !== undefined && names.includes(name);
}

/** EC2's answers for an image it no longer has (deregistered, or never there). */
export const IMAGE_GONE_ERRORS = ['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable'] as const;

/** Throttling, as the SDK names it once its own retries gave up. */
export const THROTTLE_ERRORS = [
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
] as const;

/** A run's deadline came: what was in flight was abandoned and what was not started is left for the next run. */
export class DeadlineReachedError extends Error {
  override name = 'DeadlineReachedError';
}

/**
 * Whether `error` is the deadline: DeadlineReachedError itself, or the SDK's AbortError for a call aborted by a
 * signal whose reason is one (the SDK wraps the reason as the AbortError's `cause`).
 */
export function isDeadlineError(error: unknown): boolean {
  if (awsErrorName(error) === 'DeadlineReachedError') return true;
  return (
    awsErrorName(error) === 'AbortError' &&
    awsErrorName((error as { cause?: unknown }).cause) === 'DeadlineReachedError'
  );
}
