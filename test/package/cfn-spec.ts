import type { PropertyType, Resource, SpecDatabase } from '@aws-cdk/service-spec-types';

/**
 * A template's resources checked against the CloudFormation resource specification (@aws-cdk/aws-service-spec):
 * unknown types and properties, values of the wrong shape, required properties missing, dangling references.
 * Intrinsic functions stand for any value of the right type.
 */
export interface SpecTemplate {
  Parameters?: Record<string, unknown>;
  Conditions?: Record<string, unknown>;
  Resources: Record<
    string,
    { Type: string; Condition?: string; DependsOn?: string | string[]; Properties?: Record<string, unknown> }
  >;
  Outputs?: Record<string, unknown>;
}

const PSEUDO = new Set([
  'AWS::AccountId',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
  'AWS::NotificationARNs',
]);

export function specProblems(template: SpecTemplate, db: SpecDatabase): string[] {
  const specOf = (type: string): Resource | undefined => db.lookup('resource', 'cloudFormationType', 'equals', type)[0];
  const isIntrinsic = (value: unknown): boolean => {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
    const keys = Object.keys(value);
    return keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::'));
  };
  const checkValue = (value: unknown, type: PropertyType, at: string): string[] => {
    if (isIntrinsic(value)) return [];
    switch (type.type) {
      case 'ref': {
        const def = db.get('typeDefinition', type.reference);
        if (!value || typeof value !== 'object' || Array.isArray(value))
          return [`${at}: expected an object (${def.name})`];
        return checkProperties(value as Record<string, unknown>, def.properties, at);
      }
      case 'array':
        if (!Array.isArray(value)) return [`${at}: expected a list`];
        return value.flatMap((v, i) => checkValue(v, type.element, `${at}[${i}]`));
      case 'map':
        if (!value || typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected a map`];
        return Object.entries(value).flatMap(([k, v]) => checkValue(v, type.element, `${at}.${k}`));
      case 'union':
        return type.types.some((t) => checkValue(value, t, at).length === 0)
          ? []
          : [`${at}: matches none of the allowed types`];
      case 'string':
      case 'date-time':
        return typeof value === 'string' || typeof value === 'number' ? [] : [`${at}: expected a string`];
      case 'integer':
      case 'number':
        return typeof value === 'number' ||
          (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
          ? []
          : [`${at}: expected a number`];
      case 'boolean':
        return typeof value === 'boolean' || value === 'true' || value === 'false' ? [] : [`${at}: expected a boolean`];
      default:
        return [];
    }
  };
  const checkProperties = (
    value: Record<string, unknown>,
    properties: Resource['properties'],
    at: string,
  ): string[] => {
    const problems: string[] = [];
    for (const [name, property] of Object.entries(properties))
      if (property.required && value[name] === undefined) problems.push(`${at}.${name}: required property missing`);
    for (const [name, v] of Object.entries(value)) {
      const property = properties[name];
      if (!property) problems.push(`${at}.${name}: unknown property`);
      else problems.push(...checkValue(v, property.type, `${at}.${name}`));
    }
    return problems;
  };
  const references = (value: unknown, found: { ref: string; attribute?: string }[] = []) => {
    if (Array.isArray(value)) for (const v of value) references(v, found);
    else if (value && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        if (key === 'Ref' && typeof v === 'string') found.push({ ref: v });
        else if (key === 'Fn::GetAtt') {
          const [ref, attribute] = Array.isArray(v) ? (v as string[]) : String(v).split(/\.(.*)/);
          found.push({ ref: ref!, attribute });
        } else if (key === 'Fn::Sub') {
          const [text, vars] = Array.isArray(v) ? (v as [string, Record<string, unknown>]) : [v as string, {}];
          for (const [, name] of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
            const [ref, attribute] = name!.split(/\.(.*)/);
            if (!(ref! in vars)) found.push({ ref: ref!, attribute });
          }
          references(vars, found);
        } else references(v, found);
      }
    }
    return found;
  };

  const problems: string[] = [];
  const checkRefs = (where: string, value: unknown) => {
    for (const { ref, attribute } of references(value)) {
      if (PSEUDO.has(ref) || ref in (template.Parameters ?? {})) continue;
      const target = template.Resources[ref];
      if (!target) problems.push(`${where}: ${ref} does not exist`);
      else if (attribute && !(attribute in (specOf(target.Type)?.attributes ?? {})))
        problems.push(`${where}: ${target.Type} has no attribute ${attribute}`);
    }
  };
  for (const [id, r] of Object.entries(template.Resources)) {
    const spec = specOf(r.Type);
    if (!spec) problems.push(`${id}: ${r.Type} is not a resource type`);
    else problems.push(...checkProperties(r.Properties ?? {}, spec.properties, id));
    checkRefs(id, r.Properties);
    for (const dep of [r.DependsOn ?? []].flat())
      if (!template.Resources[dep]) problems.push(`${id}: depends on missing ${dep}`);
    if (r.Condition && !(r.Condition in (template.Conditions ?? {})))
      problems.push(`${id}: condition ${r.Condition} is not defined`);
  }
  checkRefs('Outputs', template.Outputs);
  checkRefs('Conditions', template.Conditions);
  for (const [, name] of JSON.stringify(template).matchAll(/"Fn::If":\["([^"]+)"/g))
    if (!(name! in (template.Conditions ?? {}))) problems.push(`Fn::If: condition ${name} is not defined`);
  return problems;
}
