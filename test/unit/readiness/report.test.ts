import { describe, expect, it } from 'vitest';
import { computeReadiness } from '../../../lib/domain/readiness.ts';
import { formatDuration } from '../../../lib/report/format.ts';
import { gapsOf } from '../../../lib/report/gaps.ts';
import { renderReport } from '../../../lib/report/index.ts';
import { copy, input, largeReport, NOW, source } from './fixtures.ts';

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

describe('gapsOf', () => {
  it('lists every cell not ready: failed, missing, drifted, in progress; within a status the oldest image first', () => {
    const old = source('ami-old', { creationDate: '2026-02-20T10:00:00.000Z' });
    const young = source('ami-young');
    const report = computeReadiness(
      input({
        sources: [young, old],
        copies: [
          copy(young, 'us-west-2', { state: 'pending' }),
          copy(young, 'eu-west-1', { state: 'failed', stateReason: 'key disabled' }),
          copy(old, 'us-west-2'),
        ],
      }),
    );
    expect(gapsOf(report).map((g) => `${g.cell.status} ${g.row.sourceImageId} ${g.cell.region}`)).toEqual([
      'failed ami-young eu-west-1',
      'missing ami-old eu-west-1',
      'in-progress ami-young us-west-2',
    ]);
    const missing = gapsOf(report)[1];
    expect(report.rows[missing?.rowIndex ?? -1]?.sourceImageId).toBe('ami-old');
    expect(report.drRegions[missing?.column ?? -1]).toBe('eu-west-1');
  });

  it('is empty when every copy is ready', () => {
    const a = source('ami-a');
    const report = computeReadiness(input({ sources: [a], copies: [copy(a, 'us-west-2'), copy(a, 'eu-west-1')] }));
    expect(gapsOf(report)).toEqual([]);
  });
});

describe('report renderers', () => {
  it('table: what is not ready first (worst first, with reasons), then a line per image, a column per DR region', () => {
    const out = renderReport(mixedReport(), 'table', { color: false });
    const lines = out.split('\n');
    expect(lines.slice(0, 5)).toEqual([
      'Not ready (3 of 4 cells):',
      expect.stringMatching(/^STATUS\s+IMAGE\s+NAME\s+DR REGION\s+AGE\s+REASON$/),
      expect.stringMatching(/^failed\s+ami-a\s+web <prod> \| "x"\s+eu-west-1\s+2h\s+copy failed: key disabled$/),
      expect.stringMatching(/^drifted\s+ami-b\s+app-ami-b\s+eu-west-1\s+2h\s+tags changed Team$/),
      expect.stringMatching(/^in progress\s+ami-b\s+app-ami-b\s+us-west-2\s+2h\s+copy is pending$/),
    ]);
    const header = lines.findIndex((l) => /^IMAGE\s+REGION\s+NAME\s+AGE\s+US-WEST-2\s+EU-WEST-1$/.test(l));
    expect(header).toBe(6);
    expect(lines[header + 1]).toMatch(/^ami-a\s+us-east-1\s+.*ready 20m\s+failed 2h$/);
    expect(lines[header + 2]).toMatch(/^ami-b\s+.*in progress 2h\s+drifted 20m$/);
    expect(out).toContain(
      '2 images × 2 DR regions: 1 ready, 1 in progress, 0 missing, 1 failed, 1 drifted (25.0% ready)',
    );
    expect(out).not.toContain('\u001b[');
  });

  it('table and markdown: say so when every copy is ready', () => {
    const a = source('ami-a');
    const report = computeReadiness(input({ sources: [a], copies: [copy(a, 'us-west-2'), copy(a, 'eu-west-1')] }));
    const out = renderReport(report, 'table', { color: false });
    expect(out).toMatch(/^IMAGE\s+REGION/);
    expect(out).not.toContain('Not ready');
    expect(renderReport(report, 'markdown')).toContain('## Not ready\n\nEvery image is ready in every DR region.\n');
  });

  it('table: colours each status when asked, in the gap list and the matrix', () => {
    const out = renderReport(mixedReport(), 'table', { color: true });
    expect(out).toContain('\u001b[32mready 20m');
    expect(out).toContain('\u001b[33mdrifted 20m');
    expect(out).toMatch(/^\u001b\[31;1mfailed +\u001b\[0m {2}ami-a/m);
  });

  it('table and markdown: a reason spanning lines stays on its gap line', () => {
    const a = source('ami-a');
    const report = computeReadiness(
      input({
        sources: [a],
        copies: [copy(a, 'us-west-2'), copy(a, 'eu-west-1', { state: 'failed', stateReason: 'line one\nline two' })],
      }),
    );
    expect(renderReport(report, 'table')).toMatch(/^failed .*copy failed: line one line two$/m);
    expect(renderReport(report, 'markdown')).toMatch(/^\| 🛑 \*\*failed\*\* .*\| copy failed: line one line two \|$/m);
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

  it('markdown: a "Not ready" table first (worst first, reasons, escaped names), then the matrix', () => {
    const out = renderReport(mixedReport(), 'markdown');
    const gaps = out.indexOf('## Not ready (3 of 4 cells)');
    const matrix = out.indexOf('## Matrix');
    expect(gaps).toBeGreaterThan(0);
    expect(matrix).toBeGreaterThan(gaps);
    expect(out.slice(gaps, matrix).trim().split('\n').slice(2)).toEqual([
      '| Status | Image | Name | DR region | Age | Reason |',
      '|---|---|---|---|---|---|',
      '| 🛑 **failed** | `ami-a` (us-east-1) | web \\<prod\\> \\| "x" | eu-west-1 | 2h | copy failed: key disabled |',
      '| ⚠️ **drifted** | `ami-b` (us-east-1) | app-ami-b | eu-west-1 | 2h | tags changed Team |',
      '| ⏳ **in progress** | `ami-b` (us-east-1) | app-ami-b | us-west-2 | 2h | copy is pending |',
    ]);
    expect(out.slice(matrix)).toContain('| Image | Name | Age | us-west-2 | eu-west-1 |');
    expect(out.slice(matrix)).toContain('🛑 failed 2h');
  });

  it('html: self-contained, the report embedded once, user text escaped in markup and data', () => {
    const html = renderReport(mixedReport(), 'html');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/i);
    expect(html).toContain("default-src 'none'");
    expect(html).not.toContain('<prod>');
    const data = html.match(/<script type="application\/json" id="report-data">(.*?)<\/script>/s)?.[1] ?? '';
    expect(data).toContain('web \\u003cprod> | \\"x\\"');
    expect(JSON.stringify(JSON.parse(data))).toContain('web <prod> | \\"x\\"');
    expect(html.split('copy failed: key disabled')).toHaveLength(2);
    expect(html).toContain('Not ready: 3 cells of 4, worst first');
  });

  it('a copy with a restore drill says when it was verified: in the readiness cell, the table and the HTML data', () => {
    const a = source('ami-a');
    const drilled = copy(a, 'us-west-2');
    drilled.tags['ami-dr:drilled-at'] = new Date(NOW - 3 * 86_400_000 - 60_000).toISOString();
    drilled.tags['ami-dr:drill-outcome'] = 'passed';
    const failed = copy(a, 'eu-west-1');
    failed.tags['ami-dr:drilled-at'] = new Date(NOW - 86_400_000).toISOString();
    failed.tags['ami-dr:drill-outcome'] = 'failed: key-access';
    const report = computeReadiness(input({ sources: [a], copies: [drilled, failed] }));

    expect(report.rows[0]!.cells.map((c) => [c.region, c.status, c.verified])).toEqual([
      ['us-west-2', 'ready', 'verified 3 days ago'],
      ['eu-west-1', 'ready', 'drill 1 day ago: failed: key-access'],
    ]);
    const table = renderReport(report, 'table');
    expect(table).toContain('(verified 3 days ago)');
    expect(table).toContain('(drill 1 day ago: failed: key-access)');
    const data = JSON.parse(
      renderReport(report, 'html').match(/<script type="application\/json" id="report-data">(.*?)<\/script>/s)![1]!,
    ) as { s: string[] };
    expect(data.s).toEqual(expect.arrayContaining(['verified 3 days ago', 'drill 1 day ago: failed: key-access']));
  });

  it('html: text in the embedded data cannot end its script element', () => {
    const a = source('ami-a', { name: '<script>alert(1)</script>' });
    const report = computeReadiness(
      input({
        sources: [a],
        copies: [copy(a, 'us-west-2', { state: 'failed', stateReason: '</script><script>alert(1)</script>' })],
      }),
    );
    const html = renderReport(report, 'html');
    expect(html.match(/<\/script>/g)).toHaveLength(2);
    expect(html.match(/<script/g)).toHaveLength(2);
  });

  it('html: 10,000 images × 3 DR regions stay under 3 MB, every gap listed, also when a whole region is missing', () => {
    const newRegion = largeReport(10_000, { newRegion: true });
    expect(gapsOf(newRegion).length).toBeGreaterThan(10_000);
    for (const report of [largeReport(10_000), newRegion]) {
      const html = renderReport(report, 'html');
      expect(Buffer.byteLength(html)).toBeLessThan(3_000_000);
      const data = JSON.parse(html.match(/id="report-data">(.*?)<\/script>/s)?.[1] ?? '{}');
      expect(data.g).toHaveLength(gapsOf(report).length);
    }
  });
});
