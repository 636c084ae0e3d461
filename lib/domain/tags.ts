/** Tags are ami-dr's database: provenance on copies, and the one opt-out users set by hand. */
export const TAG = {
  role: 'ami-dr:role',
  sourceImageId: 'ami-dr:source-image-id',
  sourceRegion: 'ami-dr:source-region',
  sourceCreatedAt: 'ami-dr:source-created-at',
  replicatedAt: 'ami-dr:replicated-at',
  policy: 'ami-dr:policy',
  retain: 'ami-dr:retain',
  /**
   * On a DR-account copy from its creation until it is finalized: the production account's role in the DR account
   * may change (or clean up) only copies that carry it, and removing it seals the copy (see deploy/dr-account.yml).
   */
  unsealed: 'ami-dr:unsealed',
} as const;

export const REPLICA_ROLE = 'replica';

export const isReplica = (tags: Record<string, string>): boolean => tags[TAG.role] === REPLICA_ROLE;
export const isRetained = (tags: Record<string, string>): boolean => tags[TAG.retain]?.toLowerCase() === 'true';
