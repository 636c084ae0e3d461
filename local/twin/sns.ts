import { randomUUID } from 'node:crypto';
import { TwinServiceError, type ServiceHandler } from './http.ts';
import type { Clock } from './clock.ts';
import {
  decodeToken,
  encodeToken,
  page,
  queryResponse,
  queryService,
  structIndexes,
  type QueryAction,
} from './query-protocol.ts';

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
const PAGE_SIZE = 100;

export interface SnsTopic {
  topicArn: string;
  name: string;
  region: string;
  attributes: Record<string, string>;
}

export interface SnsMessage {
  messageId: string;
  topicArn: string;
  region: string;
  subject?: string;
  message: string;
  messageAttributes: Record<string, { dataType: string; stringValue?: string }>;
  /** Epoch ms (twin clock). */
  timestamp: number;
}

/**
 * SNS topics and every message published to them, kept so that tests and the demo can read what ami-dr would
 * have notified. Topics are regional: the ARN names the region.
 */
export class SnsState {
  readonly topics = new Map<string, SnsTopic>();
  readonly messages: SnsMessage[] = [];

  /** The messages published to one topic, oldest first. */
  messagesFor(topicArn: string): SnsMessage[] {
    return this.messages.filter((m) => m.topicArn === topicArn);
  }

  createTopic(region: string, accountId: string, name: string, attributes: Record<string, string> = {}): SnsTopic {
    const topicArn = `arn:aws:sns:${region}:${accountId}:${name}`;
    let topic = this.topics.get(topicArn);
    if (!topic) {
      topic = { topicArn, name, region, attributes };
      this.topics.set(topicArn, topic);
    }
    return topic;
  }
}

export interface SnsServiceContext {
  accountId: string;
  clock: Clock;
}

/** SNS over awsQuery: CreateTopic, Publish (recorded in `SnsState.messages`), ListTopics. */
export function createSnsService(state: { sns: SnsState }, ctx: SnsServiceContext): ServiceHandler {
  const sns = state.sns;
  const actions: Record<string, QueryAction> = {
    CreateTopic: ({ region, params, requestId }) => {
      const name = params.Name ?? '';
      const fifo = name.endsWith('.fifo');
      if (!/^[A-Za-z0-9_-]{1,256}$/.test(fifo ? name.slice(0, -5) : name) || name.length > 256) {
        throw new TwinServiceError('InvalidParameter', 'Invalid parameter: Topic Name');
      }
      if (fifo !== (attributesOf(params).FifoTopic === 'true')) {
        throw new TwinServiceError(
          'InvalidParameter',
          'Invalid parameter: Fifo Topic names must end with .fifo and must be made with the FifoTopic attribute',
        );
      }
      const topic = sns.createTopic(region, ctx.accountId, name, attributesOf(params));
      return queryResponse('CreateTopic', XMLNS, { TopicArn: topic.topicArn }, requestId);
    },

    Publish: ({ region, params, requestId }) => {
      const topicArn = params.TopicArn ?? params.TargetArn;
      if (!topicArn)
        throw new TwinServiceError(
          'InvalidParameter',
          'Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter',
        );
      const message = params.Message;
      if (message === undefined || message === '')
        throw new TwinServiceError('InvalidParameter', 'Invalid parameter: Empty message');
      if (Buffer.byteLength(message) > 262_144)
        throw new TwinServiceError('InvalidParameter', 'Invalid parameter: Message too long');
      const subject = params.Subject;
      if (subject !== undefined && (subject.length > 100 || /[\r\n]/.test(subject)))
        throw new TwinServiceError('InvalidParameter', 'Invalid parameter: Subject');
      const topic = sns.topics.get(topicArn);
      // A topic of another region is not reachable from this region's endpoint.
      if (!topic || topic.region !== region) throw new TwinServiceError('NotFound', 'Topic does not exist', 404);
      const messageId = randomUUID();
      sns.messages.push({
        messageId,
        topicArn,
        region,
        ...(subject !== undefined ? { subject } : {}),
        message,
        messageAttributes: messageAttributesOf(params),
        timestamp: ctx.clock.now(),
      });
      return queryResponse('Publish', XMLNS, { MessageId: messageId }, requestId);
    },

    ListTopics: ({ region, params, requestId }) => {
      const topics = [...sns.topics.values()]
        .filter((t) => t.region === region)
        .sort((a, b) => a.topicArn.localeCompare(b.topicArn));
      const scope = `topics:${region}`;
      const offset = decodeToken(scope, params.NextToken);
      if (offset === undefined) throw new TwinServiceError('InvalidParameter', 'Invalid parameter: NextToken');
      const { items, next } = page(topics, offset, PAGE_SIZE);
      return queryResponse(
        'ListTopics',
        XMLNS,
        {
          Topics: items.map((t) => ({ TopicArn: t.topicArn })),
          NextToken: next === undefined ? undefined : encodeToken(scope, next),
        },
        requestId,
      );
    },
  };

  return queryService(XMLNS, actions);
}

/** `Attributes.entry.N.key` / `.value`. */
function attributesOf(params: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of structIndexes(params, 'Attributes.entry')) {
    const key = params[`Attributes.entry.${n}.key`];
    const value = params[`Attributes.entry.${n}.value`];
    if (key !== undefined && value !== undefined) out[key] = value;
  }
  return out;
}

/** `MessageAttributes.entry.N.Name` / `.Value.DataType` / `.Value.StringValue`. */
function messageAttributesOf(params: Record<string, string>): SnsMessage['messageAttributes'] {
  const out: SnsMessage['messageAttributes'] = {};
  for (const n of structIndexes(params, 'MessageAttributes.entry')) {
    const name = params[`MessageAttributes.entry.${n}.Name`];
    const dataType = params[`MessageAttributes.entry.${n}.Value.DataType`];
    if (name === undefined || dataType === undefined) continue;
    const stringValue = params[`MessageAttributes.entry.${n}.Value.StringValue`];
    out[name] = { dataType, ...(stringValue !== undefined ? { stringValue } : {}) };
  }
  return out;
}
