import { beforeAll, describe, expect, it } from 'vitest';
import { ensurePackaged, HOME_STACK, lambdaResources, REPLICATION_STACK, type Template } from './packaged.ts';

/**
 * The home region's stack runs the scheduled work for every region; a stack in any other region holds only what
 * replication needs there. Both packaged as `npm run package` packages them: us-east-1 as home (the example policy's
 * first source region, the default) and us-east-1 with `--param home=eu-west-1`.
 */

let home: Template;
let replication: Template;

beforeAll(async () => {
  // One after the other: both share serverless-esbuild's work directory.
  home = await ensurePackaged(HOME_STACK);
  replication = await ensurePackaged(REPLICATION_STACK);
}, 1_200_000);

const ofType = (template: Template, type: string) =>
  Object.entries(template.Resources).filter(([, r]) => r.Type === type);

/** The schedules of a stack: EventBridge rules with a ScheduleExpression, by the function they target. */
function schedules(template: Template): Record<string, string> {
  const lambdas = lambdaResources(template);
  const keyOf = (logicalId: string) => [...lambdas].find(([, l]) => l.logicalId === logicalId)?.[0] ?? logicalId;
  return Object.fromEntries(
    ofType(template, 'AWS::Events::Rule')
      .filter(([, r]) => r.Properties?.ScheduleExpression)
      .map(([, r]) => {
        const [target] = r.Properties!.Targets as {
          Arn: { 'Fn::GetAtt': string[] };
          InputTransformer?: { InputTemplate: string };
        }[];
        // The scheduled state machines' rules all invoke the starter, naming their job in the input.
        const job = target!.InputTransformer?.InputTemplate.match(/"job":\s*"(\w+)"/)?.[1];
        return [job ?? keyOf(target!.Arn['Fn::GetAtt'][0]!), r.Properties!.ScheduleExpression as string];
      }),
  );
}

const REPLICATION_FUNCTIONS = [
  'onImageEvent',
  'checkSource',
  'startCopy',
  'awaitCopy',
  'awaitSlot',
  'checkCopy',
  'finalizeCopy',
  'cleanupCopy',
  'summarize',
  'onCopyState',
];

/** Every logical id a template's Ref, Fn::GetAtt and Fn::Sub name that it does not declare. */
function danglingReferences(template: Template): string[] {
  const declared = new Set([...Object.keys(template.Resources), ...Object.keys(template.Parameters ?? {})]);
  const named: string[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!value || typeof value !== 'object') return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'Ref' && typeof inner === 'string') named.push(inner);
      else if (key === 'Fn::GetAtt' && Array.isArray(inner)) named.push(String(inner[0]));
      else if (key === 'Fn::Sub') {
        const text = Array.isArray(inner) ? String(inner[0]) : String(inner);
        const locals = Array.isArray(inner) ? Object.keys((inner[1] ?? {}) as object) : [];
        for (const [, name] of text.matchAll(/\$\{([^}!]+)\}/g)) {
          const id = name!.split('.')[0]!;
          if (!locals.includes(id)) named.push(id);
        }
      }
      visit(inner);
    }
  };
  visit({ Resources: template.Resources, Outputs: template.Outputs });
  return [...new Set(named)].filter((id) => !id.startsWith('AWS::') && !declared.has(id));
}

describe('home region', () => {
  it('the home stack runs retention hourly, readiness every 30 minutes and drills weekly', () => {
    expect(schedules(home)).toEqual({
      retention: 'rate(1 hour)',
      readiness: 'rate(30 minutes)',
      drill: 'rate(7 days)',
    });
  });

  it('a stack outside the home region has no schedule', () => {
    expect(schedules(replication)).toEqual({});
  });

  it('a stack outside the home region holds the replication functions only', () => {
    expect([...lambdaResources(home).keys()].sort()).toEqual(
      [...REPLICATION_FUNCTIONS, 'retention', 'readiness', 'drill', 'startScheduled'].sort(),
    );
    expect([...lambdaResources(replication).keys()].sort()).toEqual([...REPLICATION_FUNCTIONS].sort());
  });

  it('a stack outside the home region keeps the image and copy event rules and the replicate state machine', () => {
    const patterns = (t: Template) =>
      ofType(t, 'AWS::Events::Rule')
        .filter(([, r]) => r.Properties?.EventPattern)
        .map(([, r]) => r.Properties!.Name);
    expect(patterns(replication)).toEqual(patterns(home));
    expect(patterns(replication)).toHaveLength(3); // CloudTrail calls, AMI State Change, copies' AMI State Change
    expect(ofType(replication, 'AWS::StepFunctions::StateMachine').map(([id]) => id)).toEqual([
      'ReplicateStateMachine',
    ]);
  });

  it('leaves the scheduled functions’ roles, alarms and runs bucket out of other stacks', () => {
    for (const id of [
      'RunsBucket',
      'RetentionRole',
      'ReadinessRole',
      'DrillRole',
      'RetentionErrorsAlarm',
      'RetentionExecutionsFailedAlarm',
      'ReadinessGapAlarm',
      'ReadinessExecutionsFailedAlarm',
      'DrillFailuresAlarm',
    ]) {
      expect(home.Resources[id], `${id} in the home stack`).toBeDefined();
      expect(replication.Resources[id], `${id} outside the home stack`).toBeUndefined();
    }
    const roles = (t: Template) => ofType(t, 'AWS::IAM::Role').map(([id]) => id);
    expect(roles(replication).every((id) => roles(home).includes(id))).toBe(true);
  });

  it('alarms on the failed executions of every state machine of the stack, the scheduled ones in the home stack only', () => {
    // State machine → the alarm on its AWS/States ExecutionsFailed, notifying the alarm topic.
    const failedExecutionAlarms = (t: Template) =>
      Object.fromEntries(
        ofType(t, 'AWS::CloudWatch::Alarm')
          .filter(([, a]) => a.Properties?.Namespace === 'AWS/States' && a.Properties.MetricName === 'ExecutionsFailed')
          .map(([id, a]) => {
            const p = a.Properties!;
            const [dimension] = p.Dimensions as { Name: string; Value: { Ref: string } }[];
            expect(dimension!.Name, id).toBe('StateMachineArn');
            expect(p.AlarmActions, id).toEqual([{ Ref: 'AlarmTopic' }]);
            expect(t.Resources[dimension!.Value.Ref]?.Type, id).toBe('AWS::StepFunctions::StateMachine');
            return [dimension!.Value.Ref, id];
          }),
      );
    expect(failedExecutionAlarms(home)).toEqual({
      ReplicateStateMachine: 'FailedExecutionsAlarm',
      RetentionStateMachine: 'RetentionExecutionsFailedAlarm',
      ReadinessStateMachine: 'ReadinessExecutionsFailedAlarm',
    });
    expect(failedExecutionAlarms(replication)).toEqual({ ReplicateStateMachine: 'FailedExecutionsAlarm' });
  });

  it.each([
    ['home', () => home],
    ['replication-only', () => replication],
  ])('the %s stack references nothing it does not declare', (_name, template) => {
    expect(danglingReferences(template())).toEqual([]);
  });
});
