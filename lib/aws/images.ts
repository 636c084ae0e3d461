import {
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  paginateDescribeImages,
  type EC2Client,
  type Filter,
  type Image,
} from '@aws-sdk/client-ec2';
import type { ImageRecord, ImageState } from '../domain/image.ts';

/** IAM actions this module calls (serverless.yml's roles are checked against these). */
export const REQUIRED_PERMISSIONS = ['ec2:DescribeImages', 'ec2:DescribeSnapshots'] as const;

export interface ListImagesQuery {
  owners?: string[];
  imageIds?: string[];
  filters?: Record<string, string[]>;
  includeDeprecated?: boolean;
  includeDisabled?: boolean;
}

/** Every image matching the query, all pages (DescribeImages with MaxResults 1000: one call per page, never per image). */
export async function listImages(ec2: EC2Client, region: string, query: ListImagesQuery = {}): Promise<ImageRecord[]> {
  const filters: Filter[] = Object.entries(query.filters ?? {}).map(([Name, Values]) => ({ Name, Values }));
  const images: ImageRecord[] = [];
  const pages = paginateDescribeImages(
    { client: ec2, pageSize: query.imageIds ? undefined : 1000 },
    {
      Owners: query.owners,
      ImageIds: query.imageIds,
      Filters: filters.length ? filters : undefined,
      IncludeDeprecated: query.includeDeprecated ?? true,
      IncludeDisabled: query.includeDisabled ?? true,
    },
  );
  for await (const page of pages) {
    for (const image of page.Images ?? []) images.push(toImageRecord(image, region));
  }
  return images;
}

const SNAPSHOT_BATCH = 200;

/** Which key encrypts each snapshot (DescribeImages does not say; DescribeSnapshots does, 200 ids a call). */
export async function describeSnapshotKeys(
  ec2: EC2Client,
  snapshotIds: string[],
): Promise<Map<string, { encrypted?: boolean; kmsKeyId?: string }>> {
  const keys = new Map<string, { encrypted?: boolean; kmsKeyId?: string }>();
  for (let i = 0; i < snapshotIds.length; i += SNAPSHOT_BATCH) {
    const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds.slice(i, i + SNAPSHOT_BATCH) }));
    for (const s of out.Snapshots ?? [])
      if (s.SnapshotId) keys.set(s.SnapshotId, { encrypted: s.Encrypted, kmsKeyId: s.KmsKeyId });
  }
  return keys;
}

export function toImageRecord(image: Image, region: string): ImageRecord {
  const tags = Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  return {
    imageId: image.ImageId ?? '',
    region,
    ownerId: image.OwnerId ?? '',
    name: image.Name ?? '',
    description: image.Description,
    state: (image.State ?? 'pending') as ImageState,
    stateReason: image.StateReason?.Message,
    creationDate: image.CreationDate ?? '',
    deprecationTime: image.DeprecationTime,
    deregistrationProtection: Boolean(image.DeregistrationProtection && image.DeregistrationProtection !== 'disabled'),
    rootDeviceType: image.RootDeviceType === 'instance-store' ? 'instance-store' : 'ebs',
    imageLocation: image.ImageLocation,
    imageOwnerAlias: image.ImageOwnerAlias,
    public: image.Public ?? false,
    productCodes: (image.ProductCodes ?? []).map((p) => p.ProductCodeId ?? '').filter(Boolean),
    snapshots: (image.BlockDeviceMappings ?? []).flatMap((b) =>
      b.Ebs?.SnapshotId
        ? [
            {
              snapshotId: b.Ebs.SnapshotId,
              volumeSizeGiB: b.Ebs.VolumeSize,
              encrypted: b.Ebs.Encrypted,
              kmsKeyId: b.Ebs.KmsKeyId,
            },
          ]
        : [],
    ),
    tags,
    sourceImageId: image.SourceImageId,
    sourceImageRegion: image.SourceImageRegion,
    ...(image.Architecture ? { architecture: image.Architecture } : {}),
    ...(image.BootMode ? { bootMode: image.BootMode } : {}),
  };
}

/**
 * The images with these ids, of any owner and in any state DescribeImages still shows (deprecated, disabled; a
 * deregistered one for a while), by filter: 200 ids a call, paged. Each call goes through `call` (pacing, counting).
 */
export async function describeImagesById(
  ec2: EC2Client,
  imageIds: readonly string[],
  call: <T>(send: () => Promise<T>) => Promise<T> = (send) => send(),
): Promise<Image[]> {
  const images: Image[] = [];
  for (let i = 0; i < imageIds.length; i += 200) {
    let NextToken: string | undefined;
    do {
      const out = await call(() =>
        ec2.send(
          new DescribeImagesCommand({
            Filters: [{ Name: 'image-id', Values: imageIds.slice(i, i + 200) }],
            IncludeDeprecated: true,
            IncludeDisabled: true,
            MaxResults: 1000,
            NextToken,
          }),
        ),
      );
      images.push(...(out.Images ?? []));
      NextToken = out.NextToken;
    } while (NextToken);
  }
  return images;
}
