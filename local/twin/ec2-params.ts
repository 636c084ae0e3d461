import { TwinServiceError } from './http.ts';

/**
 * A view over EC2 Query parameters as the SDK flattens them: `Name`, lists as `Name.1`, `Name.2`, structures as
 * `Name.1.Member`. A view can be narrowed to a structure (`struct('LaunchPermission.Add.1')`) so readers name
 * members relative to it.
 */
export class Ec2Params {
  constructor(
    private readonly flat: Record<string, string>,
    private readonly prefix = '',
  ) {}

  get(name: string): string | undefined {
    return this.flat[this.prefix + name];
  }

  required(name: string): string {
    const value = this.get(name);
    if (value === undefined || value === '')
      throw new TwinServiceError('MissingParameter', `The request must contain the parameter ${name}`);
    return value;
  }

  bool(name: string): boolean | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    if (value !== 'true' && value !== 'false')
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Value (${value}) for parameter ${name} is invalid. Expected: 'true' or 'false'.`,
      );
    return value === 'true';
  }

  int(name: string): number | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n))
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Value (${value}) for parameter ${name} is invalid. Expected an integer.`,
      );
    return n;
  }

  /** `Name.1`, `Name.2`, … in index order. */
  list(name: string): string[] {
    return this.indexes(name, false).map((i) => this.flat[`${this.prefix}${name}.${i}`] ?? '');
  }

  /** The structures `Name.N.*`, each as a view, in index order. */
  structs(name: string): Ec2Params[] {
    return this.indexes(name, true).map((i) => this.struct(`${name}.${i}`));
  }

  struct(name: string): Ec2Params {
    return new Ec2Params(this.flat, `${this.prefix}${name}.`);
  }

  has(name: string): boolean {
    const head = `${this.prefix}${name}`;
    return Object.keys(this.flat).some((key) => key === head || key.startsWith(`${head}.`));
  }

  /** Every parameter under this view, without its prefix (for idempotency fingerprints and CloudTrail). */
  entries(): [string, string][] {
    return Object.entries(this.flat)
      .filter(([key]) => key.startsWith(this.prefix))
      .map(([key, value]): [string, string] => [key.slice(this.prefix.length), value])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** `Filter.N.Name` / `Filter.N.Value.M`, merged by name. */
  filters(): Map<string, string[]> {
    const filters = new Map<string, string[]>();
    for (const filter of this.structs('Filter')) {
      const name = filter.required('Name');
      filters.set(name, [...(filters.get(name) ?? []), ...filter.list('Value')]);
    }
    return filters;
  }

  /** `TagSpecification.N` as resource type -> tags. */
  tagSpecifications(allowed: readonly string[]): Map<string, Map<string, string>> {
    const specs = new Map<string, Map<string, string>>();
    for (const spec of this.structs('TagSpecification')) {
      const type = spec.required('ResourceType');
      if (!allowed.includes(type)) {
        throw new TwinServiceError(
          'InvalidParameterValue',
          `'${type}' is not a valid taggable resource type for this operation.`,
        );
      }
      const tags = specs.get(type) ?? new Map<string, string>();
      for (const tag of spec.structs('Tag')) tags.set(tag.required('Key'), tag.get('Value') ?? '');
      specs.set(type, tags);
    }
    return specs;
  }

  private indexes(name: string, nested: boolean): number[] {
    const head = `${this.prefix}${name}.`;
    const found = new Set<number>();
    for (const key of Object.keys(this.flat)) {
      if (!key.startsWith(head)) continue;
      const rest = key.slice(head.length);
      const match = nested ? /^(\d+)\./.exec(rest) : /^(\d+)$/.exec(rest);
      if (match) found.add(Number(match[1]));
    }
    return [...found].sort((a, b) => a - b);
  }
}
