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
