import { describe, expect, it } from 'vitest';
import { awsErrorName, isAwsError } from '../../../lib/domain/errors.ts';

describe('awsErrorName', () => {
  it("reads the SDK error's name, and nothing from what is not an error object", () => {
    const notFound = Object.assign(new Error('gone'), { name: 'InvalidAMIID.NotFound' });
    expect(awsErrorName(notFound)).toBe('InvalidAMIID.NotFound');
    expect(awsErrorName({ name: 42 })).toBeUndefined();
    expect(awsErrorName(undefined)).toBeUndefined();
    expect(awsErrorName('InvalidAMIID.NotFound')).toBeUndefined();
  });

  it('isAwsError matches any of the names given', () => {
    const error = Object.assign(new Error('x'), { name: 'InvalidAMIID.Unavailable' });
    expect(isAwsError(error, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')).toBe(true);
    expect(isAwsError(error, 'InvalidAMIID.NotFound')).toBe(false);
    expect(isAwsError(null, 'InvalidAMIID.NotFound')).toBe(false);
  });
});
