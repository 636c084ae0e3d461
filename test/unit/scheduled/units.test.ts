import { describe, expect, it } from 'vitest';
import { createClients } from '../../../lib/aws/clients.ts';
import {
  accountsOfUnits,
  accountUnits,
  briefMessages,
  OUTPUT_REPORT_LIMIT_BYTES,
  reachClients,
  reportWithinQuota,
  scheduleWindow,
} from '../../../lib/workflows/units.ts';
import { mergeSummaries } from '../../../lib/workflows/scheduled-readiness.ts';
import type { ReadinessSummary } from '../../../lib/domain/readiness.ts';

describe('scheduleWindow', () => {
  it('names an hourly window by its hour: every start within it names the same execution', () => {
    const early = scheduleWindow('retention', Date.UTC(2026, 10, 30, 10, 0, 3), 60);
    const late = scheduleWindow('retention', Date.UTC(2026, 10, 30, 10, 59, 59), 60);
    expect(early).toEqual({
      name: 'retention-2026-11-30T10',
      start: '2026-11-30T10:00:00.000Z',
      end: '2026-11-30T11:00:00.000Z',
    });
    expect(late.name).toBe(early.name);
    expect(scheduleWindow('retention', Date.UTC(2026, 10, 30, 11, 0, 0), 60).name).toBe('retention-2026-11-30T11');
  });

  it('names a shorter window by its hour and minute, in the characters execution names allow', () => {
    const w = scheduleWindow('readiness', Date.UTC(2026, 10, 30, 10, 45), 30);
    expect(w).toMatchObject({ name: 'readiness-2026-11-30T10-30', end: '2026-11-30T11:00:00.000Z' });
    expect(w.name).toMatch(/^[A-Za-z0-9-_]{1,80}$/);
  });
});

describe('mergeSummaries', () => {
  const summary = (ready: number, missing: number, oldest: number): ReadinessSummary => ({
    images: ready + missing,
    cells: ready + missing,
    counts: { ready, missing } as ReadinessSummary['counts'],
    readyRatio: ready / (ready + missing),
    imagesNotReady: missing,
    oldestUnprotectedAgeSeconds: oldest,
    maxLagSeconds: oldest,
    medianLagSeconds: 10,
  });

  it('adds the units up and recomputes the ratio over every cell', () => {
    const merged = mergeSummaries([summary(3, 1, 100), summary(0, 4, 50)]);
    expect(merged).toMatchObject({ images: 8, cells: 8, imagesNotReady: 5, oldestUnprotectedAgeSeconds: 100 });
    expect(merged.readyRatio).toBeCloseTo(3 / 8);
    expect(merged.counts).toMatchObject({ ready: 3, missing: 5 });
  });

  it('is fully ready with no unit', () => {
    expect(mergeSummaries([]).readyRatio).toBe(1);
  });
});

describe('units over accounts', () => {
  const HOME = '111122223333';
  const home = createClients({ credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const member = createClients({ credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

  it('lists every account’s regions, account by account, and names the accounts home first', () => {
    const units = accountUnits([HOME, '333344445555', '222233334444'], ['us-east-1', 'us-west-2']);
    expect(units.map((u) => `${u.accountId}/${u.region}`)).toEqual([
      `${HOME}/us-east-1`,
      `${HOME}/us-west-2`,
      '333344445555/us-east-1',
      '333344445555/us-west-2',
      '222233334444/us-east-1',
      '222233334444/us-west-2',
    ]);
    expect(accountsOfUnits(HOME, [...units].reverse())).toEqual([HOME, '222233334444', '333344445555']);
  });

  it('gives a home unit the function’s clients, a member’s unit its role’s, and refuses a member without reach', async () => {
    const asked: string[] = [];
    const clientsFor = reachClients(home, HOME, async (account) => {
      asked.push(account);
      return member;
    });
    expect(await clientsFor({ accountId: HOME, region: 'us-east-1' })).toBe(home);
    expect(await clientsFor({ accountId: '222233334444', region: 'us-west-2' })).toBe(member);
    expect(asked).toEqual(['222233334444']);
    expect(() => reachClients(home, HOME)({ accountId: '222233334444', region: 'us-east-1' })).toThrow(
      /reaches no account but 111122223333/,
    );
  });
});

describe('a unit’s data within the payload quota', () => {
  it('keeps the first or last three messages, each cut to 200 characters', () => {
    const messages = ['a', 'b', 'c', 'd', 'x'.repeat(500)];
    expect(briefMessages(messages, 'first')).toEqual(['a', 'b', 'c']);
    const last = briefMessages(messages, 'last');
    expect(last.slice(0, 2)).toEqual(['c', 'd']);
    expect(last[2]).toHaveLength(200);
    expect(last[2]!.endsWith('…')).toBe(true);
  });

  it('returns a run’s report whole while it fits, else without its units, then without its failures’ detail', () => {
    const unit = { accountId: '111122223333', region: 'us-east-1', note: 'x'.repeat(300) };
    const small = { job: 'retention', units: [unit], failures: [unit] };
    expect(reportWithinQuota(small)).toBe(small);
    const many = Array.from({ length: 1000 }, () => unit);
    expect(reportWithinQuota({ job: 'retention', units: many, failures: [unit] })).toEqual({
      job: 'retention',
      units: [],
      failures: [unit],
      omitted: { units: 1000 },
    });
    const out = reportWithinQuota({ job: 'retention', units: many, failures: many });
    expect(out).toEqual({ job: 'retention', units: [], failures: [], omitted: { units: 1000, failures: 1000 } });
    expect(JSON.stringify(out).length).toBeLessThan(OUTPUT_REPORT_LIMIT_BYTES);
  });
});
