import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeReadiness } from '../../../lib/domain/readiness.ts';
import { renderHtml, STATUS_COLOR } from '../../../lib/report/html.ts';
import { copy, input, source } from '../../unit/readiness/fixtures.ts';
import { backgroundOf, openBrowser, rgb } from './browser.ts';

describe('the HTML readiness report in a browser', () => {
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let url: string;
  const requests: string[] = [];

  beforeAll(async () => {
    const a = source('ami-a', { name: 'web-prod' });
    const b = source('ami-b', { name: 'batch' });
    const edited = copy(b, 'eu-west-1');
    edited.tags.Team = 'ops';
    const report = computeReadiness(
      input({
        sources: [a, b],
        copies: [
          copy(a, 'us-west-2'),
          copy(a, 'eu-west-1', { state: 'failed', stateReason: 'Key alias/ami-dr is disabled' }),
          copy(b, 'us-west-2', { state: 'pending' }),
          edited,
        ],
      }),
    );
    const file = join(mkdtempSync(join(tmpdir(), 'ami-dr-html-')), 'readiness.html');
    writeFileSync(file, renderHtml(report));
    url = pathToFileURL(file).href;
    browser = await openBrowser();
    browser.context.on('request', (r) => requests.push(r.url()));
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('shows a coloured cell per image and region, the reason on hover and on click, and loads nothing else', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);

    await expect(page.locator('#ready-ratio').innerText()).resolves.toContain('25.0%');
    const rows = page.locator('#matrix tbody tr');
    await expect(rows.count()).resolves.toBe(2);

    const failed = rows.nth(0).locator('td').nth(1);
    await expect(failed.innerText()).resolves.toMatch(/^failed\s+2h$/);
    await expect(backgroundOf(failed)).resolves.toBe(rgb(STATUS_COLOR.failed.background));
    await expect(failed.getAttribute('title')).resolves.toContain('Key alias/ami-dr is disabled');

    const ready = rows.nth(0).locator('td').nth(0);
    await expect(ready.innerText()).resolves.toMatch(/^ready\s+20m$/);
    await expect(backgroundOf(ready)).resolves.toBe(rgb(STATUS_COLOR.ready.background));

    const drifted = rows.nth(1).locator('td').nth(1);
    await expect(backgroundOf(drifted)).resolves.toBe(rgb(STATUS_COLOR.drifted.background));

    await failed.click();
    const details = page.locator('#details');
    await expect(details.locator('dd.reason').innerText()).resolves.toBe('copy failed: Key alias/ami-dr is disabled');
    await expect(details.innerText()).resolves.toContain('ami-a (us-east-1)');

    await drifted.click();
    await expect(details.locator('dd.drift').innerText()).resolves.toBe('tags changed Team');
    await expect(details.innerText()).resolves.not.toContain('ami-a');

    expect(errors).toEqual([]);
    expect(requests.filter((r) => !r.startsWith('file:'))).toEqual([]);
    await page.close();
  });
});
