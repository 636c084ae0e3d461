import { describe, expect, it } from 'vitest';
import { computeReadiness } from '../../../lib/domain/readiness.ts';
import { formatDuration } from '../../../lib/report/format.ts';
import { renderReport } from '../../../lib/report/index.ts';
import { copy, input, source } from './fixtures.ts';

function mixedReport() {
  const a = source('ami-a', { name: 'web <prod> | "x"' });
  const b = source('ami-b');
  const edited = copy(b, 'eu-west-1');
  edited.tags.Team = 'ops';
  return computeReadiness(
    input({
      sources: [a, b],
      copies: [
        copy(a, 'us-west-2'),
        copy(a, 'eu-west-1', { state: 'failed', stateReason: 'key disabled' }),
        copy(b, 'us-west-2', { state: 'pending' }),
        edited,
      ],
    }),
  );
}

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [12, '12s'],
    [60, '1m'],
    [250, '4m 10s'],
    [7500, '2h 5m'],
    [7200, '2h'],
    [3 * 86400 + 4 * 3600 + 59, '3d 4h'],
  ])('%d s => %s', (s, want) => expect(formatDuration(s)).toBe(want));
});

describe('report renderers', () => {
  it('table: one line per image, a column per DR region, reasons below, no colour codes when colour is off', () => {
    const out = renderReport(mixedReport(), 'table', { color: false });
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^IMAGE\s+REGION\s+NAME\s+AGE\s+US-WEST-2\s+EU-WEST-1$/);
    expect(lines[1]).toMatch(/^ami-a\s+us-east-1\s+.*ready 20m\s+failed 2h$/);
    expect(lines[2]).toMatch(/^ami-b\s+.*in progress 2h\s+drifted 20m$/);
    expect(out).toContain('ami-a → eu-west-1: failed: copy failed: key disabled');
    expect(out).toContain('ami-b → eu-west-1: drifted: tags changed Team');
    expect(out).toContain(
      '2 images × 2 DR regions: 1 ready, 1 in progress, 0 missing, 1 failed, 1 drifted (25.0% ready)',
    );
    expect(out).not.toContain('\u001b[');
  });

  it('table: colours each status when asked', () => {
    const out = renderReport(mixedReport(), 'table', { color: true });
    expect(out).toContain('\u001b[32mready 20m');
    expect(out).toContain('\u001b[33mdrifted 20m');
  });

  it('json: parses back to the report, with a schema version', () => {
    const report = mixedReport();
    const parsed = JSON.parse(renderReport(report, 'json'));
    expect(parsed.schemaVersion).toBe(1);
    expect(parsed.summary).toEqual(report.summary);
    expect(parsed.rows[0].cells[1]).toMatchObject({
      region: 'eu-west-1',
      status: 'failed',
      reason: 'copy failed: key disabled',
    });
  });

  it('markdown: a GitHub table with escaped names and the reasons', () => {
    const out = renderReport(mixedReport(), 'markdown');
    expect(out).toContain('| Image | Name | Age | us-west-2 | eu-west-1 |');
    expect(out).toContain('web \\<prod\\> \\| "x"');
    expect(out).toContain('🛑 failed 2h');
    expect(out).toContain('- `ami-b` → eu-west-1: **drifted** — tags changed Team');
  });

  it('html: self-contained, escaped, every cell carries its status, lag and reason', () => {
    const html = renderReport(mixedReport(), 'html');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/i);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain('web &lt;prod&gt; | &quot;x&quot;');
    expect(html).not.toContain('<prod>');
    expect(html).toMatch(/class="cell s-failed"[^>]*title="failed · lag 2h · copy failed: key disabled"/);
  });

  it('html: text in the embedded data cannot end its script element', () => {
    const a = source('ami-a');
    const report = computeReadiness(
      input({
        sources: [a],
        copies: [copy(a, 'us-west-2', { state: 'failed', stateReason: '</script><script>alert(1)</script>' })],
      }),
    );
    const html = renderReport(report, 'html');
    expect(html.match(/<\/script>/g)).toHaveLength(2);
  });
});
