import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import validator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import { ROOT } from './packaged.ts';

/** Every state machine definition must be valid ASL once CloudFormation has filled in its ${...} substitutions. */

const DIR = join(ROOT, 'statemachines');
const files = (existsSync(DIR) ? readdirSync(DIR, { withFileTypes: true }) : [])
  .filter((e) => e.isFile() && e.name.endsWith('.asl.json'))
  .map((e) => e.name);

/** What DefinitionSubstitutions put in place of `${XFunctionArn}` (a Lambda ARN) and `${RunsBucket}` (its name). */
function substitute(text: string): string {
  return text
    .replace(
      /\$\{(\w+)FunctionArn\}/g,
      (_, name: string) => `arn:aws:lambda:us-east-1:000000000000:function:ami-dr-dev-${name}`,
    )
    .replaceAll('${RunsBucket}', 'ami-dr-dev-runsbucket-0123456789ab');
}

describe('state machine definitions', () => {
  it('include the replicate machine that serverless.yml deploys', () => {
    expect(files).toContain('replicate.asl.json');
  });

  it.each(files)('%s is valid ASL', (file) => {
    const definition = JSON.parse(substitute(readFileSync(join(DIR, file), 'utf8'))) as unknown;
    const result = validator(definition);
    expect(result.errors.map((e) => `${e['Error code']}: ${e.Message}`)).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it.each(files)('%s leaves no substitution unfilled', (file) => {
    expect(substitute(readFileSync(join(DIR, file), 'utf8')).match(/\$\{[^}]*\}/g) ?? []).toEqual([]);
  });
});
