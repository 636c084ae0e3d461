/**
 * An environment variable a Lambda cannot start without (a table's name): its absence fails the cold start. Apart
 * from lib/config.ts, whose policy schema a function that never reads the policy (awaitSlot) should not load.
 */
export function requiredEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
