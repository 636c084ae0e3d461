import { TwinServiceError } from './http.ts';
import { isPublic, snapshotIdsOf, type TwinImage, type TwinSnapshot } from './state.ts';

/**
 * EC2 filters: every named filter must match (AND), a filter matches when any of the resource's values for it
 * matches any of the filter's values (OR); values may use `*` and `?` wildcards. An unknown filter name is an
 * error, as on AWS, so a typo never silently returns everything.
 */
type Values<T> = (resource: T) => (string | undefined)[];

const IMAGE_FILTERS: Record<string, Values<TwinImage>> = {
  architecture: (i) => [i.architecture],
  'block-device-mapping.snapshot-id': (i) => snapshotIdsOf(i),
  'block-device-mapping.volume-size': (i) => i.blockDeviceMappings.map((m) => m.ebs?.volumeSize?.toString()),
  'block-device-mapping.encrypted': (i) =>
    i.blockDeviceMappings.map((m) => (m.ebs ? String(m.ebs.encrypted ?? false) : undefined)),
  'block-device-mapping.device-name': (i) => i.blockDeviceMappings.map((m) => m.deviceName),
  'creation-date': (i) => [i.creationDate],
  description: (i) => [i.description],
  hypervisor: () => ['xen'],
  'image-id': (i) => [i.imageId],
  'image-type': () => ['machine'],
  'is-public': (i) => [String(isPublic(i))],
  'manifest-location': (i) => [i.imageLocation],
  name: (i) => [i.name],
  'owner-alias': (i) => [i.imageOwnerAlias],
  'owner-id': (i) => [i.ownerId],
  'product-code': (i) => i.productCodes.map((p) => p.productCodeId),
  'product-code.type': (i) => i.productCodes.map((p) => p.productCodeType),
  'root-device-name': (i) => [i.rootDeviceName],
  'root-device-type': (i) => [i.rootDeviceType],
  'source-image-id': (i) => [i.sourceImageId],
  'source-image-region': (i) => [i.sourceImageRegion],
  'source-instance-id': (i) => [i.sourceInstanceId],
  state: (i) => [i.state],
  'state-reason-code': (i) => [i.stateReason?.code],
  'state-reason-message': (i) => [i.stateReason?.message],
  'virtualization-type': (i) => [i.virtualizationType],
};

const SNAPSHOT_FILTERS: Record<string, Values<TwinSnapshot>> = {
  description: (s) => [s.description],
  encrypted: (s) => [String(s.encrypted)],
  'kms-key-id': (s) => [s.kmsKeyId],
  'owner-alias': (s) => [s.ownerAlias],
  'owner-id': (s) => [s.ownerId],
  progress: (s) => [s.progress],
  'snapshot-id': (s) => [s.snapshotId],
  'start-time': (s) => [s.startTime],
  status: (s) => [s.state],
  'volume-id': (s) => [s.volumeId],
  'volume-size': (s) => [String(s.volumeSize)],
};

export type Matcher<T> = (resource: T) => boolean;

export function imageFilter(filters: Map<string, string[]>): Matcher<TwinImage> {
  return compile(filters, IMAGE_FILTERS);
}

export function snapshotFilter(filters: Map<string, string[]>): Matcher<TwinSnapshot> {
  return compile(filters, SNAPSHOT_FILTERS);
}

function compile<T extends { tags: Map<string, string> }>(
  filters: Map<string, string[]>,
  known: Record<string, Values<T>>,
): Matcher<T> {
  const checks: Matcher<T>[] = [];
  for (const [name, values] of filters) {
    const patterns = values.map(glob);
    const any = (candidates: (string | undefined)[]): boolean =>
      candidates.some((c) => c !== undefined && patterns.some((p) => p.test(c)));
    if (name.startsWith('tag:')) {
      const key = name.slice(4);
      checks.push((r) => any([r.tags.get(key)]));
    } else if (name === 'tag-key') {
      checks.push((r) => any([...r.tags.keys()]));
    } else if (name === 'tag-value') {
      checks.push((r) => any([...r.tags.values()]));
    } else {
      const values = known[name];
      if (!values) throw new TwinServiceError('InvalidParameterValue', `The filter '${name}' is invalid`);
      checks.push((r) => any(values(r)));
    }
  }
  return (resource) => checks.every((check) => check(resource));
}

export function glob(pattern: string): RegExp {
  const source = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) => (c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`));
  return new RegExp(`^${source}$`, 's');
}
