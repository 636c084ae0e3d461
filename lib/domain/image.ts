/**
 * What ami-dr knows of an image, independent of the SDK's shapes. lib/aws maps DescribeImages into this;
 * the planners read only this.
 */
export type ImageState =
  'pending' | 'available' | 'invalid' | 'deregistered' | 'transient' | 'failed' | 'error' | 'disabled';

export interface LaunchPermission {
  userId?: string;
  group?: 'all';
  organizationArn?: string;
  organizationalUnitArn?: string;
}

/**
 * A launch permission's identity, readable in reports (`account 111122223333`, `organization arn:…`, `OU arn:…`,
 * `group all`); undefined for a permission that grants nothing.
 */
export function permissionKey(p: LaunchPermission): string | undefined {
  if (p.userId) return `account ${p.userId}`;
  if (p.organizationArn) return `organization ${p.organizationArn}`;
  if (p.organizationalUnitArn) return `OU ${p.organizationalUnitArn}`;
  if (p.group === 'all') return 'group all';
  return undefined;
}

export interface ImageRecord {
  imageId: string;
  region: string;
  ownerId: string;
  name: string;
  description?: string;
  state: ImageState;
  stateReason?: string;
  /** ISO 8601. */
  creationDate: string;
  deprecationTime?: string;
  deregistrationProtection: boolean;
  rootDeviceType: 'ebs' | 'instance-store';
  /** `bucket/prefix/image.manifest.xml` for instance-store images. */
  imageLocation?: string;
  imageOwnerAlias?: string;
  public: boolean;
  productCodes: string[];
  snapshots: { snapshotId: string; volumeSizeGiB?: number; encrypted?: boolean; kmsKeyId?: string }[];
  tags: Record<string, string>;
  sourceImageId?: string;
  sourceImageRegion?: string;
}
