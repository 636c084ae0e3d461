import { injectedUnavailable, type Ec2ActionTable, type Ec2Context, type Ec2Runtime } from './ec2-context.ts';
import { errorCode } from './ec2-errors.ts';
import {
  describeImageAttribute,
  disableImage,
  disableImageDeprecation,
  disableImageDeregistrationProtection,
  enableImage,
  enableImageDeprecation,
  enableImageDeregistrationProtection,
  modifyImageAttribute,
} from './ec2-image-attributes.ts';
import { copyImage, createImage, deregisterImage, describeImages, registerImage } from './ec2-images.ts';
import { INSTANCE_ACTIONS } from './ec2-instances.ts';
import { Ec2Params } from './ec2-params.ts';
import { createEc2ReferenceActions } from './ec2-references.ts';
import {
  deleteSnapshot,
  describeSnapshotAttribute,
  describeSnapshots,
  modifySnapshotAttribute,
} from './ec2-snapshots.ts';
import { createTags, deleteTags } from './ec2-tags.ts';
import { ec2ErrorResponse, ec2Response, type XmlElements } from './ec2-xml.ts';
import { TwinServiceError, type ServiceHandler, type TwinRequest } from './http.ts';
import { accessKeyIdOf, resolveIdentity, type CallerIdentity } from './identity.ts';
import { denialMessage, type Iam } from './iam.ts';
import { deleteSnapshotRequest, ec2Requests } from './iam-requests.ts';
import { throttleClass, type Throttler } from './throttle.ts';

/**
 * EC2 over the Query protocol. Every request: apply what is due in twin time, find the action (unknown ones are
 * `InvalidAction`, never a silent success), take a token from the region's bucket for the action's class, run
 * it, and serialize the result or the error. CreateImage, CopyImage and RegisterImage calls, successful or not,
 * are recorded as CloudTrail would and published on the event bus of the region where they were made.
 */
export const IMAGE_ACTIONS: Ec2ActionTable = {
  DescribeImages: describeImages,
  CreateImage: createImage,
  RegisterImage: registerImage,
  CopyImage: copyImage,
  DeregisterImage: deregisterImage,
  DescribeImageAttribute: describeImageAttribute,
  ModifyImageAttribute: modifyImageAttribute,
  EnableImageDeprecation: enableImageDeprecation,
  DisableImageDeprecation: disableImageDeprecation,
  EnableImageDeregistrationProtection: enableImageDeregistrationProtection,
  DisableImageDeregistrationProtection: disableImageDeregistrationProtection,
  DisableImage: disableImage,
  EnableImage: enableImage,
  DescribeSnapshots: describeSnapshots,
  DeleteSnapshot: deleteSnapshot,
  DescribeSnapshotAttribute: describeSnapshotAttribute,
  ModifySnapshotAttribute: modifySnapshotAttribute,
  CreateTags: createTags,
  DeleteTags: deleteTags,
};

const TRAILED = new Set(['CreateImage', 'CopyImage', 'RegisterImage']);

export interface Ec2ServiceOptions {
  throttler: Throttler;
  identities?: Record<string, string>;
  /** The roles callers sign as; a caller with one is refused what its role does not allow. */
  iam?: Iam;
  /** Runs before every request: applies transitions that are due. */
  settle: () => void;
}

export function createEc2Service(runtime: Ec2Runtime, options: Ec2ServiceOptions): ServiceHandler {
  const actions: Ec2ActionTable = { ...createEc2ReferenceActions(), ...INSTANCE_ACTIONS, ...IMAGE_ACTIONS };

  return (request) => {
    options.settle();
    const authorization = request.headers.authorization;
    const caller = resolveIdentity(
      accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
      runtime.accountId,
      options.identities,
    );
    const action = actions[request.action];
    let body: XmlElements | undefined;
    let failure: { code: string; message: string; status: number } | undefined;
    let denied: ReturnType<Iam['denied']>;
    if (!action) {
      failure = {
        code: 'InvalidAction',
        message: `The action ${request.action || '(none)'} is not valid for this web service.`,
        status: 400,
      };
    } else if (!options.throttler.take(request.region, throttleClass(request.action, request.params))) {
      failure = { code: 'RequestLimitExceeded', message: 'Request limit exceeded.', status: 503 };
    } else if (
      options.iam?.principal(caller.accessKeyId) &&
      (denied = options.iam.denied(
        caller.accessKeyId,
        ec2Requests(request, runtime.state, runtime.accountId, runtime.accounts),
      ))
    ) {
      failure = {
        code: 'UnauthorizedOperation',
        message: `You are not authorized to perform this operation. ${denialMessage(denied.arn, denied.request)}.`,
        status: 403,
      };
    } else if (injectedUnavailable(runtime.settings, request.action)) {
      failure = { code: 'Unavailable', message: 'The service is unavailable. Please try again shortly.', status: 503 };
    } else {
      const iam = options.iam;
      const ctx: Ec2Context = {
        ...runtime,
        region: request.region,
        requestId: request.requestId,
        caller,
        params: new Ec2Params(request.params),
        mayDeleteSnapshot: (snapshotId) =>
          !iam ||
          iam.allows(
            caller.accessKeyId,
            deleteSnapshotRequest(runtime.state, request.region, runtime.accountId, snapshotId),
          ),
      };
      try {
        if (ctx.params.bool('DryRun'))
          throw new TwinServiceError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
        body = action(ctx);
      } catch (error) {
        // A bug in the twin is reported as EC2 reports its own: InternalError, HTTP 500 (which clients retry).
        failure = errorCode(error) ?? {
          code: 'InternalError',
          message: `An internal error has occurred: ${(error as Error).message}`,
          status: 500,
        };
        if (failure.code === 'InternalError') console.error('twin: EC2 action failed:', request.action, error);
      }
    }
    if (TRAILED.has(request.action)) recordCall(runtime, request, caller, body, failure);
    return failure
      ? ec2ErrorResponse(failure.code, failure.message, request.requestId, failure.status)
      : ec2Response(request.action, request.requestId, body ?? {});
  };
}

/** The CloudTrail record of an image-making call, as EventBridge delivers it (`AWS API Call via CloudTrail`). */
function recordCall(
  runtime: Ec2Runtime,
  request: TwinRequest,
  caller: CallerIdentity,
  body: XmlElements | undefined,
  failure: { code: string; message: string } | undefined,
): void {
  const time = new Date(runtime.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const imageId = typeof body?.imageId === 'string' ? body.imageId : undefined;
  runtime.events.publish({
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.ec2',
    account: runtime.accountId,
    time,
    region: request.region,
    resources: [],
    detail: {
      eventVersion: '1.10',
      userIdentity: {
        type: caller.type,
        principalId: caller.principalId,
        arn: caller.arn,
        accountId: caller.accountId,
        accessKeyId: caller.accessKeyId,
        ...(caller.roleArn
          ? {
              sessionContext: {
                sessionIssuer: {
                  type: 'Role',
                  principalId: caller.principalId.split(':')[0],
                  arn: caller.roleArn,
                  accountId: caller.accountId,
                  userName: caller.roleArn.split('/').pop(),
                },
                attributes: { creationDate: time, mfaAuthenticated: 'false' },
              },
            }
          : {}),
      },
      eventTime: time,
      eventSource: 'ec2.amazonaws.com',
      eventName: request.action,
      awsRegion: request.region,
      sourceIPAddress: '127.0.0.1',
      userAgent: String(request.headers['user-agent'] ?? ''),
      ...(failure
        ? {
            errorCode: failure.code === 'RequestLimitExceeded' ? 'Client.RequestLimitExceeded' : failure.code,
            errorMessage: failure.message,
          }
        : {}),
      requestParameters: requestParameters(request.action, new Ec2Params(request.params)),
      responseElements: imageId ? { requestId: request.requestId, imageId } : null,
      requestID: request.requestId,
      eventID: globalThis.crypto.randomUUID(),
      readOnly: false,
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: runtime.accountId,
      eventCategory: 'Management',
    },
  });
}

/** CloudTrail's rendering of the request: lowerCamel names, lists as `{ items: [...] }`. */
function requestParameters(action: string, params: Ec2Params): Record<string, unknown> {
  const tagSpecificationSet = () => {
    const specs = params.structs('TagSpecification');
    if (specs.length === 0) return undefined;
    return {
      items: specs.map((spec) => ({
        resourceType: spec.get('ResourceType'),
        tags: spec.structs('Tag').map((tag) => ({ key: tag.get('Key'), value: tag.get('Value') ?? '' })),
      })),
    };
  };
  const bool = (name: string) => {
    const value = params.get(name);
    return value === undefined ? undefined : value === 'true';
  };
  const blockDeviceMapping = () => {
    const mappings = params.structs('BlockDeviceMapping');
    return {
      items: mappings.map((m) => ({
        deviceName: m.get('DeviceName'),
        ebs: m.has('Ebs')
          ? {
              snapshotId: m.get('Ebs.SnapshotId'),
              volumeSize: m.get('Ebs.VolumeSize') === undefined ? undefined : Number(m.get('Ebs.VolumeSize')),
            }
          : undefined,
      })),
    };
  };
  const drop = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  switch (action) {
    case 'CopyImage':
      return drop({
        sourceRegion: params.get('SourceRegion'),
        sourceImageId: params.get('SourceImageId'),
        name: params.get('Name'),
        description: params.get('Description'),
        encrypted: bool('Encrypted'),
        kmsKeyId: params.get('KmsKeyId'),
        clientToken: params.get('ClientToken'),
        copyImageTags: bool('CopyImageTags'),
        snapshotCopyCompletionDurationMinutes:
          params.get('SnapshotCopyCompletionDurationMinutes') === undefined
            ? undefined
            : Number(params.get('SnapshotCopyCompletionDurationMinutes')),
        tagSpecificationSet: tagSpecificationSet(),
      });
    case 'CreateImage':
      return drop({
        instanceId: params.get('InstanceId'),
        name: params.get('Name'),
        description: params.get('Description'),
        noReboot: bool('NoReboot'),
        blockDeviceMapping: blockDeviceMapping(),
        tagSpecificationSet: tagSpecificationSet(),
      });
    default:
      return drop({
        name: params.get('Name'),
        description: params.get('Description'),
        imageLocation: params.get('ImageLocation'),
        rootDeviceName: params.get('RootDeviceName'),
        architecture: params.get('Architecture'),
        blockDeviceMapping: blockDeviceMapping(),
        tagSpecificationSet: tagSpecificationSet(),
      });
  }
}
