/** The SDK error name a failing call rejects with (fails the test if the call succeeds). */
export async function errorName(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as Error).name;
  }
  throw new Error('expected the call to fail');
}
