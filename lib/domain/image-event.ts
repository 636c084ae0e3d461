import * as z from 'zod';
import { REGION } from './policy.ts';

/**
 * The EventBridge events that can start a replication: CloudTrail records of the three calls that bring an image
 * into being (CreateImage, CopyImage, RegisterImage) and EC2's own `EC2 AMI State Change`. Both are parsed into
 * one `ImageEvent`, so the decision code never reads either raw shape.
 */

export const API_CALL_DETAIL_TYPE = 'AWS API Call via CloudTrail';
export const STATE_CHANGE_DETAIL_TYPE = 'EC2 AMI State Change';
export const IMAGE_EVENT_NAMES = ['CreateImage', 'CopyImage', 'RegisterImage'] as const;
export type ImageEventName = (typeof IMAGE_EVENT_NAMES)[number];

/** Thrown for an event ami-dr cannot read: never retried into success, so it ends in the dead-letter queue. */
export class MalformedEventError extends Error {
  override name = 'MalformedEventError';
  constructor(
    readonly problems: string[],
    options?: ErrorOptions,
  ) {
    super(`malformed image event: ${problems.join('; ')}`, options);
  }
}

const IMAGE_ID = /^ami-[0-9a-f]{8,17}$/;
const ACCOUNT = /^\d{12}$/;

const envelope = {
  version: z.string().optional(),
  id: z.string().min(1),
  account: z.string().regex(ACCOUNT, 'is not a 12-digit account id'),
  time: z.iso.datetime({ offset: true }),
  region: z.string().regex(REGION, 'is not an AWS region name'),
  source: z.literal('aws.ec2'),
  resources: z.array(z.string()).optional(),
};

const apiCallSchema = z.object({
  ...envelope,
  'detail-type': z.literal(API_CALL_DETAIL_TYPE),
  detail: z.object({
    eventSource: z.literal('ec2.amazonaws.com'),
    eventName: z.enum(IMAGE_EVENT_NAMES),
    awsRegion: z.string().regex(REGION, 'is not an AWS region name'),
    eventTime: z.string().optional(),
    userIdentity: z
      .object({
        type: z.string().optional(),
        arn: z.string().optional(),
        accountId: z.string().optional(),
        sessionContext: z
          .object({ sessionIssuer: z.object({ arn: z.string().optional() }).partial().optional() })
          .partial()
          .optional(),
      })
      .optional(),
    requestParameters: z.record(z.string(), z.unknown()).nullish(),
    responseElements: z.object({ imageId: z.string().regex(IMAGE_ID, 'is not an image id').optional() }).nullish(),
    errorCode: z.string().optional(),
    errorMessage: z.string().optional(),
    recipientAccountId: z.string().regex(ACCOUNT, 'is not a 12-digit account id').optional(),
  }),
});

const stateChangeSchema = z.object({
  ...envelope,
  'detail-type': z.literal(STATE_CHANGE_DETAIL_TYPE),
  detail: z.object({
    RequestId: z.string().optional(),
    ImageId: z.string().regex(IMAGE_ID, 'is not an image id'),
    State: z.string().min(1),
    ErrorMessage: z.string().optional(),
  }),
});

export interface ImageEvent {
  kind: 'api-call' | 'state-change';
  /** EventBridge event id. */
  id: string;
  /** The account the event belongs to (the caller's, for a CloudTrail record delivered cross-account). */
  account: string;
  region: string;
  time: string;
  eventName?: ImageEventName;
  /** Absent on calls that failed. */
  imageId?: string;
  errorCode?: string;
  errorMessage?: string;
  /** The principal that made the call: the assumed-role session ARN and the role behind it. */
  callerArn?: string;
  callerRoleArn?: string;
  /** State-change events: `available`, `failed`, `deregistered`, `disabled`. */
  state?: string;
}

/** Parses an EventBridge event into an `ImageEvent`, or throws `MalformedEventError` naming what is wrong. */
export function parseImageEvent(raw: unknown): ImageEvent {
  const detailType = (raw as { 'detail-type'?: unknown } | null)?.['detail-type'];
  if (detailType === STATE_CHANGE_DETAIL_TYPE) {
    const e = parseWith(stateChangeSchema, raw);
    return {
      kind: 'state-change',
      id: e.id,
      account: e.account,
      region: e.region,
      time: e.time,
      imageId: e.detail.ImageId,
      state: e.detail.State,
      ...(e.detail.ErrorMessage ? { errorMessage: e.detail.ErrorMessage } : {}),
    };
  }
  if (detailType === API_CALL_DETAIL_TYPE) {
    const e = parseWith(apiCallSchema, raw);
    const d = e.detail;
    const imageId = d.responseElements?.imageId;
    if (!d.errorCode && !imageId) {
      throw new MalformedEventError([
        `detail.responseElements.imageId: a successful ${d.eventName} names the image it made`,
      ]);
    }
    const event: ImageEvent = {
      kind: 'api-call',
      id: e.id,
      account: d.recipientAccountId ?? e.account,
      region: d.awsRegion,
      time: e.time,
      eventName: d.eventName,
    };
    if (imageId) event.imageId = imageId;
    if (d.errorCode) event.errorCode = d.errorCode;
    if (d.errorMessage) event.errorMessage = d.errorMessage;
    if (d.userIdentity?.arn) event.callerArn = d.userIdentity.arn;
    const issuer = d.userIdentity?.sessionContext?.sessionIssuer?.arn;
    if (issuer) event.callerRoleArn = issuer;
    return event;
  }
  throw new MalformedEventError([
    `detail-type: expected "${API_CALL_DETAIL_TYPE}" or "${STATE_CHANGE_DETAIL_TYPE}", got ${JSON.stringify(detailType ?? null)}`,
  ]);
}

function parseWith<T>(schema: z.ZodType<T>, raw: unknown): T {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new MalformedEventError(
      result.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`),
      { cause: result.error },
    );
  }
  return result.data;
}
