import { describeKey, describeRegions, type KeyInfo, type RegionInfo } from '../../aws/account.ts';
import { listImages } from '../../aws/images.ts';
import type { ImageRecord } from '../../domain/image.ts';
import { readKeyAccess } from '../../aws/key-access.ts';
import { consumersOf, keyPolicyStatements, missingKeyAccess, type KeyAccess } from '../../domain/key-access.ts';
import { keyAccessMode, type Policy } from '../../domain/policy.ts';
import { publicSourceRefusal } from '../../domain/replication.ts';
import { matchSelector } from '../../domain/selector.ts';
import { isReplica } from '../../domain/tags.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { ec2Client, kmsClient, rbinClient } from '../../aws/clients.ts';
import { reachDrAccounts } from '../../workflows/dr-account.ts';
import { listRecycleBinRules } from '../../aws/recycle-bin.ts';
import { describeBinRule } from '../../domain/recycle-bin.ts';
import { retentionRegions } from '../../workflows/retention.ts';
import { plural } from '../../domain/text.ts';

export interface Problem {
  field: string;
  message: string;
}

export interface AccountFacts {
  regions: RegionInfo[];
  /** DR region => its key, or undefined when the key does not exist there. */
  keys: Record<string, KeyInfo | undefined>;
  /** Public EBS images owned in the source regions. */
  publicSources: ImageRecord[];
  /** DR region => its key's policy and grants (read when the key is usable). */
  keyAccess?: Record<string, KeyAccess | undefined>;
}

/** The policy against the account: regions exist and are enabled, DR keys exist and can encrypt shareable copies, nothing public would be copied. */
export function accountProblems(policy: Readonly<Policy>, facts: AccountFacts): Problem[] {
  const problems: Problem[] = [];
  const regions = new Map(facts.regions.map((r) => [r.name, r]));
  const checkRegion = (field: string, name: string): boolean => {
    const r = regions.get(name);
    if (!r) problems.push({ field, message: `${name} is not a region of this partition` });
    else if (r.optInStatus === 'not-opted-in')
      problems.push({ field, message: `${name} is not enabled in this account (opt-in region)` });
    return Boolean(r && r.optInStatus !== 'not-opted-in');
  };
  policy.regions.sources.forEach((name, i) => checkRegion(`regions.sources.${i}`, name));
  policy.regions.dr.forEach((dr, i) => {
    if (!checkRegion(`regions.dr.${i}.region`, dr.region)) return;
    const field = `regions.dr.${i}.kmsKeyId`;
    const key = facts.keys[dr.region];
    if (!key) problems.push({ field, message: `${dr.kmsKeyId} does not exist in ${dr.region}` });
    else if (key.state !== 'Enabled')
      problems.push({ field, message: `${dr.kmsKeyId} in ${dr.region} is ${key.state}; copies need it Enabled` });
    else if (key.manager === 'AWS')
      problems.push({
        field,
        message: `${dr.kmsKeyId} in ${dr.region} is AWS-managed; images encrypted under it cannot be shared`,
      });
    else if (key.spec !== 'SYMMETRIC_DEFAULT')
      problems.push({ field, message: `${dr.kmsKeyId} in ${dr.region} is ${key.spec}; EBS needs a symmetric key` });
  });
  policy.regions.dr.forEach((dr, i) => {
    const access = facts.keyAccess?.[dr.region];
    if (access) problems.push(...keyAccessProblems(policy, dr.kmsKeyId, dr.region, i, access));
  });
  for (const image of facts.publicSources) {
    const refusal = publicSourceRefusal(policy, image);
    if (!refusal || isReplica(image.tags) || !matchSelector(policy.selector, image).match) continue;
    problems.push({ field: 'selector', message: `${image.imageId} (${image.region}) is in scope, but ${refusal}` });
  }
  return problems;
}

/**
 * The accounts, organizations and OUs the policy shares every copy with must be able to use the DR key, or they
 * cannot launch the copies. With `keyAccess: grant` ami-dr grants accounts the key itself; organizations and OUs
 * (and accounts under `check`) need the key policy to allow them: the statement to add is part of the problem.
 */
function keyAccessProblems(
  policy: Readonly<Policy>,
  kmsKeyId: string,
  region: string,
  index: number,
  access: KeyAccess,
): Problem[] {
  const consumers = consumersOf([
    ...policy.replication.addLaunchPermissions.userIds.map((userId) => ({ userId })),
    ...policy.replication.addLaunchPermissions.organizationArns.map((organizationArn) => ({ organizationArn })),
    ...policy.replication.addLaunchPermissions.organizationalUnitArns.map((organizationalUnitArn) => ({
      organizationalUnitArn,
    })),
  ]).filter((c) => c.kind !== 'account' || keyAccessMode(policy) === 'check');
  const missing = missingKeyAccess(access, consumers);
  if (missing.length === 0) return [];
  const statements = JSON.stringify(keyPolicyStatements(missing), null, 2).replace(/\n/g, '\n    ');
  return [
    {
      field: `regions.dr.${index}.kmsKeyId`,
      message:
        `${kmsKeyId} in ${region} (${access.keyArn}) does not let ${missing.map((c) => c.id).join(', ')} use it, ` +
        `so they cannot launch the copies shared with them; add to the key policy's Statement list:\n    ${statements}`,
    },
  ];
}

export const validateCommand: Command = {
  async run(ctx) {
    const file = ctx.flags.policy ?? 'ami-dr.config.yml';
    let policy: Readonly<Policy>;
    try {
      policy = ctx.policy();
    } catch (error) {
      const problems = (error as { problems?: string[] }).problems;
      if (!problems) throw error;
      const parsed = problems.map((p) => {
        const at = p.indexOf(': ');
        return { field: at > 0 ? p.slice(0, at) : '(policy)', message: at > 0 ? p.slice(at + 2) : p };
      });
      report(ctx, file, parsed, undefined);
      return EXIT.usage;
    }
    const session = await ctx.session();
    const progress = ctx.out.progress('checking the account');
    try {
      const home = policy.regions.sources[0] ?? session.region;
      // A DR account's key is checked there, through the role ami-dr assumes (which must exist and trust it).
      const reach = await reachDrAccounts({ clients: session.clients, policy });
      const drClients = reach.clientsFor;
      const [regions, keyEntries, publicSources] = await Promise.all([
        describeRegions(ec2Client(session.clients, home)),
        Promise.all(
          policy.regions.dr.map(
            async (d) => [d.region, await describeKey(kmsClient(drClients(d.region), d.region), d.kmsKeyId)] as const,
          ),
        ),
        Promise.all(
          policy.regions.sources.map((r) =>
            listImages(ec2Client(session.clients, r), r, { owners: ['self'], filters: { 'is-public': ['true'] } }),
          ),
        ),
      ]);
      // Who may use each usable DR key: its policy and grants, once per key.
      const keyAccess = Object.fromEntries(
        await Promise.all(
          keyEntries.map(
            async ([region, key]) =>
              [
                region,
                key && key.state === 'Enabled'
                  ? await readKeyAccess(kmsClient(drClients(region), region), key.arn)
                  : undefined,
              ] as const,
          ),
        ),
      );
      const unreachable = new Set(reach.problems.map((p) => `regions.dr.${p.index}.kmsKeyId`));
      const problems = [
        ...reach.problems.map(({ field, message }) => ({ field, message })),
        // An unreachable account's key cannot be looked at: its problem is the role, not the key.
        ...accountProblems(policy, {
          regions,
          keys: Object.fromEntries(keyEntries),
          publicSources: publicSources.flat(),
          keyAccess,
        }).filter((p) => !unreachable.has(p.field)),
      ];
      const bins = await recycleBinNotes(policy, session.clients);
      progress.done();
      report(ctx, file, problems, session.accountId, bins);
      return problems.length ? EXIT.failure : EXIT.ok;
    } finally {
      progress.done();
    }
  },
};

/**
 * The Recycle Bin rules in force in each region retention looks after: what retention deregisters or deletes under
 * them stays (and is billed) for their period. Not a problem, a fact to know; a region whose rules cannot be read
 * says so.
 */
async function recycleBinNotes(
  policy: Readonly<Policy>,
  clients: Parameters<typeof rbinClient>[0],
): Promise<Record<string, string[]>> {
  const entries = await Promise.all(
    retentionRegions(policy).map(async (region) => {
      const { rules, warning } = await listRecycleBinRules(rbinClient(clients, region), region);
      return [region, warning ? [warning] : rules.map(describeBinRule)] as const;
    }),
  );
  return Object.fromEntries(entries.filter(([, lines]) => lines.length > 0));
}

function report(
  ctx: Parameters<Command['run']>[0],
  file: string,
  problems: Problem[],
  accountId: string | undefined,
  recycleBin: Record<string, string[]> = {},
): void {
  if (ctx.flags.json) {
    ctx.out.printJson({
      valid: problems.length === 0,
      policyFile: file,
      accountId: accountId ?? null,
      problems,
      ...(Object.keys(recycleBin).length > 0 ? { recycleBin } : {}),
    });
    return;
  }
  const printBin = (): void => {
    if (Object.keys(recycleBin).length === 0) return;
    ctx.out.print('Recycle Bin rules in force (what retention removes under them stays billed until they let go):');
    for (const [region, lines] of Object.entries(recycleBin)) for (const l of lines) ctx.out.print(`  ${region}: ${l}`);
  };
  if (problems.length === 0) {
    ctx.out.print(`${ctx.out.paint('green', '✓')} ${file} is valid for account ${accountId}`);
    printBin();
    return;
  }
  ctx.out.print(
    `${ctx.out.paint('red', '✗')} ${file}: ${plural(problems.length, 'problem')}${accountId ? ` in account ${accountId}` : ''}`,
  );
  for (const p of problems) ctx.out.print(`  ${ctx.out.paint('bold', p.field)}: ${p.message}`);
  printBin();
}
