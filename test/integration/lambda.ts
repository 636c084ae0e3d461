import type { Context } from 'aws-lambda';
import { vi } from 'vitest';
import type { LocalRuntimeOptions } from '../../local/runtime/runtime.ts';

/**
 * A scheduled job's Lambda handler driven by its state machine on the local runtime: the runtime runs the job's ASL
 * (statemachines/<job>.asl.json) and, instead of binding its tasks to the workflow functions, invokes the handler
 * with each task's event and a Lambda context, as Step Functions invokes the deployed function.
 */

type Handler = (event: unknown, context: Context) => Promise<unknown>;

export interface TaskInvocation {
  state: string;
  event: unknown;
  output?: unknown;
}

/** A Lambda context whose remaining time (the invocation's budget) is `remainingMs`. */
export function lambdaContext(functionName: string, remainingMs = 900_000): Context {
  return {
    functionName,
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    awsRequestId: 'req-1',
    getRemainingTimeInMillis: () => remainingMs,
  } as unknown as Context;
}

/**
 * The runtime's `wrapTask`: the `job` state machine's tasks (`<job>.Plan`, `<job>.RunUnit`, `<job>.Aggregate`)
 * invoke `handler()` (resolved at each invocation, so it can be imported once the runtime's endpoint is known),
 * each with the context `contextFor` gives it; every other task is left bound as it was. Each invocation is
 * recorded in `invocations`, with its output.
 */
export function tasksOnHandler(
  job: 'retention' | 'readiness',
  handler: () => Handler,
  contextFor: (state: string, event: unknown) => Context = () => lambdaContext(`ami-dr-dev-${job}`),
): { wrapTask: NonNullable<LocalRuntimeOptions['wrapTask']>; invocations: TaskInvocation[] } {
  const invocations: TaskInvocation[] = [];
  return {
    invocations,
    wrapTask: (state, task) =>
      state.startsWith(`${job}.`)
        ? async (event) => {
            const invocation: TaskInvocation = { state, event };
            invocations.push(invocation);
            invocation.output = await handler()(event, contextFor(state, event));
            return invocation.output;
          }
        : task,
  };
}

/**
 * Captures what the process writes (Powertools writes its EMF documents to stdout) until `stop()`, which restores
 * the console and returns the EMF documents written.
 */
export function captureEmf(): { stop(): Record<string, unknown>[] } {
  const emitted: string[] = [];
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void emitted.push(String(line))),
    vi.spyOn(console, 'info').mockImplementation((line: unknown) => void emitted.push(String(line))),
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => emitted.push(String(chunk)) > 0),
  ];
  return {
    stop: () => {
      for (const spy of spies) spy.mockRestore();
      return emitted
        .flatMap((l) => l.split('\n'))
        .filter((l) => l.trim().startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((doc) => '_aws' in doc);
    },
  };
}
