import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeReadiness, type ReadinessReport } from '../../../lib/domain/readiness.ts';
import { gapsOf } from '../../../lib/report/gaps.ts';
import { renderHtml, STATUS_COLOR } from '../../../lib/report/html.ts';
import { copy, input, largeReport, source } from '../../unit/readiness/fixtures.ts';
import { backgroundOf, openBrowser, rgb } from './browser.ts';

const HOSTILE = '<script>globalThis.pwned=1</script><img src=x onerror="globalThis.pwned=2">';

describe('the HTML readiness report in a browser', () => {
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  const dir = mkdtempSync(join(tmpdir(), 'ami-dr-html-'));
  const requests: string[] = [];
  const written = new Set<string>();
  /** Requests for anything but the report files themselves: a script, image or font fetched, a beacon sent. */
  const foreign = (): string[] => requests.filter((r) => !written.has(r));

  function write(name: string, report: ReadinessReport): string {
    const file = join(dir, name);
    writeFileSync(file, renderHtml(report));
    const href = pathToFileURL(file).href;
    written.add(href);
    return href;
  }

  async function open(url: string) {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    return { page, errors };
  }

  let url: string;
  beforeAll(async () => {
    const a = source('ami-a', { name: 'web-prod-1.2.0', creationDate: '2026-02-27T10:00:00.000Z' });
    const b = source('ami-b', { name: 'batch-2026.01' });
    const c = source('ami-c', { name: HOSTILE });
    const d = source('ami-d', { name: 'web-prod-1.3.0' });
    const edited = copy(b, 'eu-west-1');
    edited.tags.Team = 'ops';
    url = write(
      'readiness.html',
      computeReadiness(
        input({
          sources: [a, b, c, d],
          copies: [
            copy(a, 'us-west-2'),
            copy(a, 'eu-west-1', { state: 'failed', stateReason: 'Key alias/ami-dr is disabled' }),
            copy(b, 'us-west-2', { state: 'pending' }),
            edited,
            copy(c, 'us-west-2'),
            copy(c, 'eu-west-1', { state: 'failed', stateReason: '<b>bold</b> & "quoted"' }),
            copy(d, 'us-west-2'),
          ],
        }),
      ),
    );
    browser = await openBrowser();
    browser.context.on('request', (r) => requests.push(r.url()));
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('leads with every gap and its reason in the page text, worst first, without a click; loads nothing else', async () => {
    const { page, errors } = await open(url);

    const body = await page.innerText('body');
    const order = [
      'copy failed: Key alias/ami-dr is disabled',
      'copy failed: <b>bold</b> & "quoted"',
      'no copy in this region',
      'tags changed Team',
      'copy is pending',
    ].map((reason) => body.indexOf(reason));
    expect(order.every((at) => at > 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    // The gap list comes before the matrix.
    expect(body.indexOf('Not ready: 5 cells of 8, worst first')).toBeLessThan(order[0] ?? -1);
    expect(body.indexOf('All images')).toBeGreaterThan(order[4] ?? Infinity);

    const gaps = page.locator('#gaps tbody tr');
    await expect(gaps.count()).resolves.toBe(5);
    // The older failed image first; status as a word on its colour.
    await expect(gaps.nth(0).innerText()).resolves.toMatch(
      /^failed\s+ami-a\s+web-prod-1\.2\.0.*eu-west-1\s+2d 2h\s+copy failed/s,
    );
    await expect(backgroundOf(gaps.nth(0).locator('.chip'))).resolves.toBe(rgb(STATUS_COLOR.failed.background));
    await expect(backgroundOf(gaps.nth(2).locator('.chip'))).resolves.toBe(rgb(STATUS_COLOR.missing.background));

    await expect(page.locator('#ready-ratio').innerText()).resolves.toContain('37.5%');
    const rows = page.locator('#matrix tbody tr');
    await expect(rows.count()).resolves.toBe(4);
    const failed = rows.nth(0).locator('td').nth(1);
    await expect(failed.innerText()).resolves.toMatch(/^failed\s+2d 2h$/);
    await expect(backgroundOf(failed)).resolves.toBe(rgb(STATUS_COLOR.failed.background));
    await expect(failed.getAttribute('title')).resolves.toContain('Key alias/ami-dr is disabled');
    const ready = rows.nth(0).locator('td').nth(0);
    await expect(ready.innerText()).resolves.toMatch(/^ready\s+2d$/);
    await expect(backgroundOf(ready)).resolves.toBe(rgb(STATUS_COLOR.ready.background));

    expect(errors).toEqual([]);
    expect(foreign()).toEqual([]);
    await page.close();
  });

  it('a click on a matrix cell shows its copy, reason and drift', async () => {
    const { page, errors } = await open(url);
    const rows = page.locator('#matrix tbody tr');
    await rows.nth(0).locator('td').nth(1).click();
    const details = page.locator('#details');
    await expect(details.locator('dd.reason').innerText()).resolves.toBe('copy failed: Key alias/ami-dr is disabled');
    await expect(details.innerText()).resolves.toContain('ami-a (us-east-1)');
    await expect(details.innerText()).resolves.toContain('ami-a-eu-west-1 (failed)');

    await rows.nth(1).locator('td').nth(1).click();
    await expect(details.locator('dd.drift').innerText()).resolves.toBe('tags changed Team');
    await expect(details.innerText()).resolves.not.toContain('ami-a');
    await details.getByRole('button', { name: 'Close' }).click();
    await expect(details.isHidden()).resolves.toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('filters the gap list and the matrix by state, DR region and image name or family', async () => {
    const { page, errors } = await open(url);
    const gaps = page.locator('#gaps tbody tr');
    const rows = page.locator('#matrix tbody tr');

    // Only failed cells: the two failed gaps, and the matrix rows that have one.
    for (const st of ['ready', 'in-progress', 'missing', 'drifted'])
      await page.locator(`#filters input[name=state][value="${st}"]`).uncheck();
    await expect(gaps.count()).resolves.toBe(2);
    let body = await page.innerText('body');
    expect(body).toContain('copy failed: Key alias/ami-dr is disabled');
    expect(body).not.toContain('no copy in this region');
    expect(body).toContain('Showing 2 of 5.');
    await expect(rows.count()).resolves.toBe(2);

    // Every state again, one DR region: its gaps, and a single column.
    for (const st of ['ready', 'in-progress', 'missing', 'drifted'])
      await page.locator(`#filters input[name=state][value="${st}"]`).check();
    await page.selectOption('#filters select[name=region]', { label: 'us-west-2' });
    await expect(gaps.count()).resolves.toBe(1);
    await expect(gaps.nth(0).innerText()).resolves.toContain('copy is pending');
    await expect(page.locator('#matrix thead th').allInnerTexts()).resolves.toEqual(['Image', 'us-west-2']);
    await expect(rows.count()).resolves.toBe(4);

    // All regions, a family: both web-prod images and nothing else.
    await page.selectOption('#filters select[name=region]', { label: 'all' });
    await page.fill('#filters input[name=q]', 'web-prod');
    await expect.poll(() => rows.count()).toBe(2);
    await expect(page.locator('#matrix tbody tr th code').allInnerTexts()).resolves.toEqual(['ami-a', 'ami-d']);
    body = await page.innerText('body');
    expect(body).toContain('no copy in this region');
    expect(body).not.toContain('tags changed Team');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows markup in image names and reasons as text: nothing in them runs', async () => {
    const { page, errors } = await open(url);
    const body = await page.innerText('body');
    expect(body).toContain(HOSTILE);
    expect(body).toContain('copy failed: <b>bold</b> & "quoted"');
    await expect(page.evaluate('globalThis.pwned')).resolves.toBeUndefined();
    await expect(page.locator('#gaps b, #matrix img, #gaps img').count()).resolves.toBe(0);
    expect(foreign()).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('draws 10,000 images × 3 regions, every gap listed on load', async () => {
    const report = largeReport(10_000);
    const { page, errors } = await open(write('large.html', report));
    await expect(page.locator('#gaps tbody tr').count()).resolves.toBe(gapsOf(report).length);
    await expect(page.locator('#matrix tbody tr').count()).resolves.toBe(10_000);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
