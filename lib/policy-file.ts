import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parsePolicy, PolicyError, type Policy } from './domain/policy.ts';

/** Reads and validates a YAML policy file (the CLI's `--policy`), naming the file in every error. */
export function loadPolicyFile(path: string): Readonly<Policy> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new Error(`cannot read policy file ${path}: ${(cause as Error).message}`, { cause });
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (cause) {
    throw new Error(`policy file ${path} is not valid YAML: ${yamlProblem(cause)}`, { cause });
  }
  if (document === null || document === undefined)
    throw new PolicyError(
      ['(policy): the file is empty; a policy needs at least regions.sources and regions.dr'],
      path,
    );
  return parsePolicy(document, path);
}

/** The yaml package's message runs over several lines (position, then an excerpt with a caret): keep one line. */
function yamlProblem(error: unknown): string {
  const e = error as { message?: string; linePos?: { line: number; col: number }[] };
  const first = (e.message ?? String(error)).split('\n')[0] ?? '';
  const reason = first.replace(/ at line \d+, column \d+:?$/, '').replace(/:$/, '');
  const at = e.linePos?.[0];
  return at ? `line ${at.line}, column ${at.col}: ${reason}` : reason;
}
