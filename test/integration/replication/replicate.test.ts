import { afterEach, describe, expect, it } from 'vitest';
import { DR, SOURCE, copiesOf, createImage, deprecate, harness, launchPermissions, share, snapshots, snapshotIdsOf, summaries, tagsOf, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

describe('replication on the twin', () => {
  it('copies a new EBS image to every DR region: encrypted under the region key, tags, permissions, deprecation, provenance', async () => {
    h = await harness();
    const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdefghij';
    const imageId = await createImage(h, 'web-2026.01.01', { Team: 'web', CostCenter: 'cc-1', Family: 'web' });
    await share(h, imageId, [{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }]);
    const deprecateAt = new Date(Date.UTC(2026, 6, 1));
    await deprecate(h, imageId, deprecateAt);

    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    for (const region of DR) {
      const copies = await copiesOf(h, region, imageId);
      expect(copies).toHaveLength(1);
      const copy = copies[0]!;
      expect(copy.State).toBe('available');
      expect(tagsOf(copy.Tags)).toMatchObject({
        Team: 'web',
        Family: 'web',
        'dr-copy': 'true',
        'ami-dr:role': 'replica',
        'ami-dr:source-image-id': imageId,
        'ami-dr:source-region': SOURCE,
      });
      expect(tagsOf(copy.Tags)).not.toHaveProperty('CostCenter');
      expect(tagsOf(copy.Tags)['ami-dr:replicated-at']).toBeDefined();
      const snaps = await snapshots(h, region, snapshotIdsOf(copy));
      expect(snaps.length).toBeGreaterThan(0);
      for (const snap of snaps) {
        expect(snap.Encrypted).toBe(true);
        expect(snap.KmsKeyId).toBe(h.keys[region]);
        expect(tagsOf(snap.Tags)).toMatchObject({ Team: 'web', Family: 'web', 'ami-dr:role': 'replica' });
      }
      const perms = await launchPermissions(h, region, copy.ImageId!);
      expect(perms).toEqual(expect.arrayContaining([{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }]));
      expect(perms).toHaveLength(3);
      expect(new Date(copy.DeprecationTime!).getTime()).toBe(deprecateAt.getTime());
    }
  });
});
