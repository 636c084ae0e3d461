import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyClientToken, executionName } from '../../../lib/domain/replication.ts';

/** Step Functions execution names: 1-80 chars, none of whitespace, brackets, wildcards, control or special chars. */
const SFN_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;

const region = fc.constantFrom('us-east-1', 'eu-west-1', 'ap-southeast-2', 'us-gov-west-1', 'il-central-1');
const imageId = fc.stringMatching(/^ami-[0-9a-f]{8,17}$/);
const version = fc.stringMatching(/^[0-9a-f]{8}$/);
const anyText = fc.string({ unit: 'binary', maxLength: 120 });

describe('executionName', () => {
  it('is deterministic, at most 80 chars, and a valid Step Functions name', () => {
    fc.assert(
      fc.property(
        fc.oneof(region, anyText),
        fc.oneof(imageId, anyText),
        fc.oneof(version, anyText),
        fc.nat(5),
        (r, i, v, attempt) => {
          const name = executionName(r, i, v, attempt);
          expect(name).toBe(executionName(r, i, v, attempt));
          expect(name).toMatch(SFN_NAME);
          expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
        },
      ),
    );
  });

  it('differs when the image, region, policy version or attempt differs', () => {
    fc.assert(
      fc.property(region, imageId, imageId, version, version, (r, a, b, v1, v2) => {
        fc.pre(a !== b);
        expect(executionName(r, a, v1)).not.toBe(executionName(r, b, v1));
        if (v1 !== v2) expect(executionName(r, a, v1)).not.toBe(executionName(r, a, v2));
        expect(executionName(r, a, v1)).not.toBe(executionName(r, a, v1, 1));
      }),
    );
  });

  it('stays readable for real inputs', () => {
    expect(executionName('us-east-1', 'ami-0a1b2c3d4e5f60718', 'abcd1234')).toBe(
      'us-east-1_ami-0a1b2c3d4e5f60718_abcd1234',
    );
  });
});

describe('copyClientToken', () => {
  it('is deterministic, at most 64 printable ASCII chars', () => {
    fc.assert(
      fc.property(
        anyText,
        anyText,
        anyText,
        fc.option(anyText, { nil: undefined }),
        fc.nat(3),
        (sr, i, tr, key, variant) => {
          const token = copyClientToken(sr, i, tr, key, variant);
          expect(token).toBe(copyClientToken(sr, i, tr, key, variant));
          expect(token.length).toBeLessThanOrEqual(64);
          expect(token).toMatch(/^[\x21-\x7e]+$/);
        },
      ),
    );
  });

  it('differs when any of source region, image, target region, key, variant or execution differs', () => {
    fc.assert(
      fc.property(
        region,
        imageId,
        region,
        fc.constantFrom('alias/ami-dr', 'alias/other', 'mrk-0123456789abcdef0123456789abcdef'),
        (sr, i, tr, key) => {
          const base = copyClientToken(sr, i, tr, key);
          expect(copyClientToken(sr, i, tr, `${key}x`)).not.toBe(base);
          expect(copyClientToken(sr, `${i}0`, tr, key)).not.toBe(base);
          expect(copyClientToken(sr, i, tr, key, 1)).not.toBe(base);
          // Another execution (a re-drive) must not get back the copy an earlier one made and cleaned up.
          expect(copyClientToken(sr, i, tr, key, 0, 'us-east-1_ami-1_abcd1234_r1')).not.toBe(base);
          if (sr !== tr) expect(copyClientToken(tr, i, sr, key)).not.toBe(base);
        },
      ),
    );
  });
});
