import type { ImageRecord } from './image.ts';
import type { RecycleBinRule } from './recycle-bin.ts';

/**
 * What retention knows of one region: the account's images and everything that still points at them.
 * lib/aws/inventory.ts builds it from the describe APIs; the planner reads only this, so it stays pure and
 * tests can hand it plain data.
 */

export type ReferenceKind =
  | 'instance'
  | 'launch-template'
  | 'launch-configuration'
  | 'auto-scaling-group'
  /** An EC2 Fleet (CreateFleet) that may still launch. */
  | 'fleet'
  /** A Spot Fleet request that may still launch. */
  | 'spot-fleet'
  /** Found by DescribeImageReferences: instances, launch templates, SSM parameters, Image Builder recipes. */
  | 'image-reference';

export interface ImageReference {
  kind: ReferenceKind;
  /**
   * The referencing resource: instance id, `lt-…:$Latest(3)`, launch configuration name, ASG name, ARN; an ASG
   * or fleet that names a launch template version also says which (`fleet-… (lt-…:4)`).
   */
  id: string;
}

/** How far in-use checks reached, so the report can say what a "not referenced" verdict rests on. */
export type ImageReferencesCoverage =
  /** DescribeImageReferences answered for every image that could be deprecated or removed. */
  | 'checked'
  /** The region does not offer DescribeImageReferences (InvalidAction / UnsupportedOperation): only the scans. */
  | 'unavailable'
  /** Not asked (protectInUse off, or a plan made before the check). */
  | 'not-checked';

export interface LiveSources {
  /** Regions whose images were listed; a replica whose source region is not here has an unknown source. */
  checkedRegions: readonly string[];
  /** `region/imageId` of every source image that still exists (any state but deregistered). */
  live: ReadonlySet<string>;
  /**
   * `region/imageId` of live sources that the same run removes (a run plans every region before it changes
   * anything): their copies are kept, and named so, until a later run finds the source gone.
   */
  removedInRun?: ReadonlySet<string>;
}

export interface RetentionInventory {
  region: string;
  /** The account retention acts for; images owned by anyone else are never touched. */
  accountId: string;
  images: readonly ImageRecord[];
  /** Snapshot size in GiB by snapshot id (DescribeSnapshots), for bytes freed. */
  snapshotSizes: ReadonlyMap<string, number>;
  /** Snapshot tags by snapshot id (DescribeSnapshots), for Recycle Bin rules with resource tags. */
  snapshotTags?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** The region's Recycle Bin rules for AMIs and snapshots: what they retain is not freed until they let go. */
  recycleBinRules?: readonly RecycleBinRule[];
  /** Everything that references an image, by image id. Images absent here are referenced by nothing found. */
  references: ReadonlyMap<string, readonly ImageReference[]>;
  imageReferences: ImageReferencesCoverage;
  /** For replicas: which of their sources still exist. Absent: no source was looked up. */
  sources?: LiveSources;
  /** Things the inventory could not see (e.g. a launch template naming an SSM parameter); they go into the report. */
  warnings: readonly string[];
}

export const sourceKey = (region: string, imageId: string): string => `${region}/${imageId}`;
