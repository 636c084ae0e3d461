import {
  DescribeExecutionCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { isAwsError } from '../domain/errors.ts';

/** What the Step Functions adapter calls, for serverless.yml's least-privilege statements. */
export const REQUIRED_PERMISSIONS = [
  'states:StartExecution',
  'states:DescribeExecution',
  'states:SendTaskSuccess',
] as const;

export interface StartedExecution {
  executionArn: string;
  /** `true`: an execution of that name already existed (running with this input, or closed), so nothing new started. */
  alreadyStarted: boolean;
}

/** The ARN an execution of this name has (or would have) under the state machine. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

/**
 * StartExecution with a deterministic name. `ExecutionAlreadyExists` means this very request was made before (a
 * duplicate event), which is success: one execution per name is the point.
 */
export async function startExecution(
  sfn: SFNClient,
  stateMachineArn: string,
  name: string,
  input: unknown,
): Promise<StartedExecution> {
  try {
    const out = await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
    return { executionArn: out.executionArn ?? executionArnOf(stateMachineArn, name), alreadyStarted: false };
  } catch (error) {
    if (isAwsError(error, 'ExecutionAlreadyExists')) {
      return { executionArn: executionArnOf(stateMachineArn, name), alreadyStarted: true };
    }
    throw error;
  }
}

export interface ExecutionView {
  status: string;
  startDate?: Date;
  stopDate?: Date;
  output?: unknown;
  error?: string;
  cause?: string;
}

export async function describeExecution(sfn: SFNClient, executionArn: string): Promise<ExecutionView> {
  const out = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  return {
    status: out.status ?? 'UNKNOWN',
    startDate: out.startDate,
    stopDate: out.stopDate,
    output: out.output ? (JSON.parse(out.output) as unknown) : undefined,
    error: out.error,
    cause: out.cause,
  };
}

/** An execution, or `undefined` when no execution of that ARN exists. */
export async function findExecution(sfn: SFNClient, executionArn: string): Promise<ExecutionView | undefined> {
  try {
    return await describeExecution(sfn, executionArn);
  } catch (error) {
    if (isAwsError(error, 'ExecutionDoesNotExist')) return undefined;
    throw error;
  }
}

/** ami-dr is deployed once per source region under the same names: the state machine in `region` differs only in its region. */
export function stateMachineArnIn(stateMachineArn: string, region: string): string {
  const parts = stateMachineArn.split(':');
  if (parts.length < 7 || parts[2] !== 'states') throw new Error(`not a state machine ARN: ${stateMachineArn}`);
  parts[3] = region;
  return parts.join(':');
}

/** A token already used, timed out or of an ended execution: the wait it belonged to is over, nothing to wake. */
const STALE_TOKEN_ERRORS = ['TaskTimedOut', 'InvalidToken', 'TaskDoesNotExist'];

/** Completes a `.waitForTaskToken` task; `false` when the token is stale (a late or duplicate completion). */
export async function sendTaskSuccess(sfn: SFNClient, token: string, output: unknown): Promise<boolean> {
  try {
    await sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) }));
    return true;
  } catch (error) {
    if (isAwsError(error, ...STALE_TOKEN_ERRORS)) return false;
    throw error;
  }
}
