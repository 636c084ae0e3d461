import { DescribeRegionsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { isAwsError } from '../domain/errors.ts';

/** What the account look-ups call (the CLI's validate, and readiness for the DR keys). */
export const REQUIRED_PERMISSIONS = ['sts:GetCallerIdentity', 'ec2:DescribeRegions', 'kms:DescribeKey'] as const;

export async function callerAccountId(sts: STSClient): Promise<string> {
  const out = await sts.send(new GetCallerIdentityCommand({}));
  if (!out.Account) throw new Error('GetCallerIdentity returned no account');
  return out.Account;
}

export interface RegionInfo {
  name: string;
  /** `opt-in-not-required`, `opted-in` or `not-opted-in`. */
  optInStatus: string;
}

/** Every region of the partition, enabled or not (AllRegions). */
export async function describeRegions(ec2: EC2Client): Promise<RegionInfo[]> {
  const out = await ec2.send(new DescribeRegionsCommand({ AllRegions: true }));
  return (out.Regions ?? []).map((r) => ({
    name: r.RegionName ?? '',
    optInStatus: r.OptInStatus ?? 'opt-in-not-required',
  }));
}

export interface KeyInfo {
  keyId: string;
  arn: string;
  state: string;
  manager: string;
  spec: string;
}

/** DescribeKey; `undefined` when the key (or alias) does not exist in that region. */
export async function describeKey(kms: KMSClient, keyId: string): Promise<KeyInfo | undefined> {
  try {
    const out = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
    const m = out.KeyMetadata;
    return {
      keyId: m?.KeyId ?? '',
      arn: m?.Arn ?? '',
      state: m?.KeyState ?? 'Unknown',
      manager: m?.KeyManager ?? 'CUSTOMER',
      spec: m?.KeySpec ?? 'SYMMETRIC_DEFAULT',
    };
  } catch (error) {
    if (isAwsError(error, 'NotFoundException')) return undefined;
    throw error;
  }
}
