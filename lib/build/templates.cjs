'use strict';
// Build-time resolvers for serverless.yml that turn files into CloudFormation values, offline.
const { readFileSync } = require('node:fs');
const path = require('node:path');
const tsx = require('tsx/cjs/api');

const ROOT = path.resolve(__dirname, '..', '..');

/** An ASL file as the DefinitionString CloudFormation wants; malformed JSON fails the package, naming the file. */
function definition(name) {
  const file = path.join(ROOT, 'statemachines', `${name}.asl.json`);
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw plain(new Error(`state machine ${path.relative(ROOT, file)} is missing: ${cause.message}`));
  }
  try {
    return JSON.stringify(JSON.parse(text));
  } catch (cause) {
    throw plain(new Error(`state machine ${path.relative(ROOT, file)} is not valid JSON: ${cause.message}`));
  }
}

function plain(error) {
  error.stack = `${error.name}: ${error.message}`;
  return error;
}

/**
 * The operations dashboard. Built from METRIC so it can only show metrics the code emits; `${AWS::Region}` and
 * the state machine's ARN are filled in by CloudFormation (Fn::Sub).
 */
function dashboardBody() {
  const { METRIC, METRICS_NAMESPACE, SERVICE } = tsx.require('../observability.ts', __filename);
  const ns = METRICS_NAMESPACE;
  const m = (name, stat, label) => [ns, name, 'service', SERVICE, { stat, label: label ?? name }];
  const widget = (x, y, title, metrics, extra = {}) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: '${AWS::Region}', view: 'timeSeries', period: 300, metrics, ...extra },
  });
  const body = {
    widgets: [
      widget(0, 0, 'DR readiness (ready ratio)', [m(METRIC.readyRatio, 'Minimum')], {
        yAxis: { left: { min: 0, max: 1 } },
        period: 1800,
      }),
      widget(12, 0, 'Images not ready', [m(METRIC.imagesNotReady, 'Maximum')], { period: 1800 }),
      widget(0, 6, 'Replication lag (seconds)', [
        m(METRIC.replicationLagSeconds, 'Average'),
        m(METRIC.replicationLagSeconds, 'Maximum', 'max lag'),
      ]),
      widget(12, 6, 'Oldest unprotected image age (seconds)', [m(METRIC.oldestUnprotectedAgeSeconds, 'Maximum')], {
        period: 1800,
      }),
      widget(0, 12, 'Replications', [
        m(METRIC.replicationSucceeded, 'Sum'),
        m(METRIC.replicationFailed, 'Sum'),
        m(METRIC.redriven, 'Sum'),
        ['AWS/States', 'ExecutionsFailed', 'StateMachineArn', '${ReplicateStateMachine}', { stat: 'Sum' }],
      ]),
      widget(
        12,
        12,
        'Retention',
        [
          m(METRIC.imagesDeprecated, 'Sum'),
          m(METRIC.imagesRemoved, 'Sum'),
          m(METRIC.gibFreed, 'Sum'),
          m(METRIC.retentionErrors, 'Sum'),
        ],
        { period: 3600 },
      ),
    ],
  };
  return { 'Fn::Sub': JSON.stringify(body) };
}

module.exports = {
  replicateDefinition: () => definition('replicate'),
  retentionDefinition: () => definition('retention'),
  readinessDefinition: () => definition('readiness'),
  dashboardBody,
};
