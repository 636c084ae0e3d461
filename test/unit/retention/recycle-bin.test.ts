import { describe, expect, it } from 'vitest';
import { binStayFor, binUntil, type RecycleBinRule } from '../../../lib/domain/recycle-bin.ts';

const rule = (id: string, days: number, more: Partial<RecycleBinRule> = {}): RecycleBinRule => ({
  id,
  resourceType: 'EBS_SNAPSHOT',
  retentionDays: days,
  resourceTags: [],
  excludeTags: [],
  ...more,
});

describe('binStayFor', () => {
  it('applies a tag-level rule only to resources with one of its tags (a tag without value matches the key)', () => {
    const rules = [rule('web', 7, { resourceTags: [{ key: 'Team', value: 'web' }, { key: 'Keep' }] })];
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Team: 'web' })).toEqual({ ruleId: 'web', retentionDays: 7 });
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Keep: 'anything' })?.ruleId).toBe('web');
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Team: 'db' })).toBeUndefined();
    expect(binStayFor(rules, 'EC2_IMAGE', { Team: 'web' })).toBeUndefined();
  });

  it('applies a Region-level rule to everything of its type except what carries an exclusion tag', () => {
    const rules = [rule('all', 14, { excludeTags: [{ key: 'Scratch', value: 'true' }] })];
    expect(binStayFor(rules, 'EBS_SNAPSHOT', {})?.ruleId).toBe('all');
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Scratch: 'true' })).toBeUndefined();
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Scratch: 'false' })?.ruleId).toBe('all');
  });

  it('takes the longest period where several rules match', () => {
    const rules = [rule('short', 3), rule('long', 30, { resourceTags: [{ key: 'Team' }] }), rule('mid', 10)];
    expect(binStayFor(rules, 'EBS_SNAPSHOT', { Team: 'x' })?.ruleId).toBe('long');
    expect(binStayFor(rules, 'EBS_SNAPSHOT', {})?.ruleId).toBe('mid');
    expect(binUntil({ ruleId: 'mid', retentionDays: 10 }, Date.UTC(2026, 0, 1))).toBe('2026-01-11T00:00:00.000Z');
  });
});
