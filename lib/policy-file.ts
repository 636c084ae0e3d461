import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parsePolicy, type Policy } from './domain/policy.ts';

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
    throw new Error(`policy file ${path} is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  return parsePolicy(document, path);
}
