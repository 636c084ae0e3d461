import { describe, expect, it } from 'vitest';
import { computeReadiness, summarize, type ReadinessReport } from '../../../lib/domain/readiness.ts';
import { renderReport } from '../../../lib/report/index.ts';
import { copy, input, source } from './fixtures.ts';

/** Reports over several accounts name each row's account; a one-account report reads as before. */
function report(accounts: string[]): ReadinessReport {
  const rows = accounts.flatMap((account, i) => {
    const src = source(`ami-${i}a`);
    const one = computeReadiness(input({ sources: [src], copies: [copy(src, 'us-west-2')] }));
    return one.rows.map((row) => ({ ...row, account }));
  });
  const base = computeReadiness(input({ sources: [], copies: [] }));
  return { ...base, rows, summary: summarize(rows) };
}

describe('readiness reports over several accounts', () => {
  it('shows the account of each image in the table, Markdown and HTML', () => {
    const r = report(['222233334444', '333344445555']);
    const table = renderReport(r, 'table', { color: false });
    expect(table.split('\n').find((l) => l.startsWith('ACCOUNT'))).toMatch(/^ACCOUNT\s+IMAGE\s+REGION/);
    expect(table).toMatch(/^222233334444\s+ami-0a\s/m);
    expect(renderReport(r, 'markdown')).toContain('`ami-1a` (us-east-1, account 333344445555)');
    expect(renderReport(r, 'html')).toContain('us-east-1, account 333344445555');
    expect(r.summary.images).toBe(2);
  });

  it('leaves a one-account report without an account column', () => {
    const table = renderReport(report(['222233334444']), 'table', { color: false });
    expect(table).not.toContain('ACCOUNT');
    expect(table).not.toContain('222233334444');
  });
});
