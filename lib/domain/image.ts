/**
 * What ami-dr knows of an image, independent of the SDK's shapes. lib/aws maps DescribeImages into this;
 * the planners read only this.
 */
export type ImageState =
  'pending' | 'available' | 'invalid' | 'deregistered' | 'transient' | 'failed' | 'error' | 'disabled';

/** On its way: becomes available (or fails) without anyone acting. */
export const IN_PROGRESS_STATES: ReadonlySet<ImageState> = new Set(['pending', 'transient']);
/** Still registered but unusable, and not getting better by waiting. */
export const FAILED_STATES: ReadonlySet<ImageState> = new Set(['failed', 'error', 'invalid', 'disabled']);
/** Will never become available by waiting: failed, disabled or deregistered. */
export const GONE_STATES: ReadonlySet<ImageState> = new Set([...FAILED_STATES, 'deregistered']);
/** A source in these states is not copied (a disabled one is tried: enabling it is the owner's call). */
export const NOT_COPYABLE_STATES: ReadonlySet<ImageState> = new Set(['failed', 'error', 'invalid', 'deregistered']);
/** Copies worth adopting instead of starting another, best first. */
export const ADOPTABLE_STATES: readonly ImageState[] = ['available', 'pending'];

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
  /** `x86_64`, `arm64`, `i386`, ... (what an instance launched from it must run on). */
  architecture?: string;
  /** `uefi`, `legacy-bios`, `uefi-preferred`, or none (the instance type's default). */
  bootMode?: string;
}
