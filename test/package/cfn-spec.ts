import type { PropertyType, Resource, SpecDatabase } from '@aws-cdk/service-spec-types';

/**
 * A CloudFormation template checked against the resource specification (@aws-cdk/aws-service-spec): unknown types
 * and properties, missing required ones, values of the wrong shape, references to what does not exist. Shared by
 * the packaged serverless template's test, the DR account template's and the member account template's.
 */

export interface CfnTemplate {
  Parameters?: Record<string, unknown>;
  Conditions?: Record<string, unknown>;
  Resources: Record<
    string,
    { Type: string; Properties?: Record<string, unknown>; DependsOn?: string | string[]; Condition?: string }
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

export function specChecker(db: SpecDatabase) {
  function specOf(type: string): Resource | undefined {
    return db.lookup('resource', 'cloudFormationType', 'equals', type)[0];
  }
  function isIntrinsic(value: unknown): boolean {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
    const keys = Object.keys(value);
    return keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::'));
  }

  /** Problems with a value against its property type; intrinsic functions stand for any value of the right type. */
  function checkValue(value: unknown, type: PropertyType, at: string): string[] {
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
  }

  function checkProperties(value: Record<string, unknown>, properties: Resource['properties'], at: string): string[] {
    const problems: string[] = [];
    for (const [name, property] of Object.entries(properties)) {
      if (property.required && value[name] === undefined) problems.push(`${at}.${name}: required property missing`);
    }
    for (const [name, v] of Object.entries(value)) {
      const property = properties[name];
      if (!property) problems.push(`${at}.${name}: unknown property`);
      else problems.push(...checkValue(v, property.type, `${at}.${name}`));
    }
    return problems;
  }

  /** Every Ref, Fn::GetAtt and Fn::Sub reference in a value. */
  function references(
    value: unknown,
    found: { ref: string; attribute?: string }[] = [],
  ): { ref: string; attribute?: string }[] {
    if (Array.isArray(value)) {
      for (const v of value) references(v, found);
    } else if (value && typeof value === 'object') {
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
  }

  /** `Type: unknown` for every resource CloudFormation does not know. */
  function unknownTypes(template: CfnTemplate): string[] {
    return Object.entries(template.Resources)
      .filter(([, r]) => !specOf(r.Type))
      .map(([id, r]) => `${id}: ${r.Type}`);
  }

  function propertyProblems(template: CfnTemplate): string[] {
    return Object.entries(template.Resources).flatMap(([id, r]) => {
      const spec = specOf(r.Type);
      return spec ? checkProperties(r.Properties ?? {}, spec.properties, id) : [];
    });
  }

  function referenceProblems(template: CfnTemplate): string[] {
    const problems: string[] = [];
    const check = (where: string, value: unknown) => {
      for (const { ref, attribute } of references(value)) {
        if (PSEUDO.has(ref) || ref in (template.Parameters ?? {})) continue;
        const target = template.Resources[ref];
        if (!target) problems.push(`${where}: ${ref} does not exist`);
        else if (attribute && !(attribute in (specOf(target.Type)?.attributes ?? {})))
          problems.push(`${where}: ${target.Type} has no attribute ${attribute}`);
      }
    };
    for (const [id, r] of Object.entries(template.Resources)) {
      check(id, r.Properties);
      for (const dep of [r.DependsOn ?? []].flat())
        if (!template.Resources[dep]) problems.push(`${id}: depends on missing ${dep}`);
      if (r.Condition && !(r.Condition in (template.Conditions ?? {})))
        problems.push(`${id}: condition ${r.Condition} is not defined`);
    }
    check('Outputs', template.Outputs);
    check('Conditions', template.Conditions);
    const conditionsUsed = JSON.stringify(template.Resources).matchAll(/"Fn::If":\["([^"]+)"/g);
    for (const [, name] of conditionsUsed)
      if (!(name! in (template.Conditions ?? {}))) problems.push(`Fn::If: condition ${name} is not defined`);
    return problems;
  }

  /** Every problem above, unknown types first. */
  function problems(template: CfnTemplate): string[] {
    return [
      ...unknownTypes(template).map((t) => `${t} is not a resource type`),
      ...propertyProblems(template),
      ...referenceProblems(template),
    ];
  }

  return { specOf, unknownTypes, propertyProblems, referenceProblems, problems };
}
