import type { ReadinessReport, ReadinessStatus } from '../domain/readiness.ts';
import { cellText, formatDuration, formatPercent } from './format.ts';
import { plural } from '../domain/text.ts';

const MARK: Record<ReadinessStatus, string> = {
  ready: '✅',
  'in-progress': '⏳',
  missing: '❌',
  failed: '🛑',
  drifted: '⚠️',
};

/** For pull requests, wikis and chat: the matrix as a GitHub table, then the reasons. */
export function renderMarkdown(report: ReadinessReport): string {
  const s = report.summary;
  const out = [
    `# DR readiness: ${report.policy.name}`,
    '',
    `Generated ${report.generatedAt} · policy version \`${report.policy.version}\` · sources ${report.sourceRegions.join(', ')}`,
    '',
    `**${formatPercent(s.readyRatio)} ready** — ${plural(s.images, 'image')} × ${plural(report.drRegions.length, 'DR region')}: ${s.counts.ready} ready, ` +
      `${s.counts['in-progress']} in progress, ${s.counts.missing} missing, ${s.counts.failed} failed, ${s.counts.drifted} drifted. ` +
      `Oldest unprotected image: ${s.imagesNotReady ? formatDuration(s.oldestUnprotectedAgeSeconds) : 'none'}.`,
    '',
    `| Image | Name | Age | ${report.drRegions.join(' | ')} |`,
    `|---|---|---|${report.drRegions.map(() => '---').join('|')}|`,
  ];
  for (const row of report.rows) {
    const cells = report.drRegions.map((region) => {
      const c = row.cells.find((x) => x.region === region);
      return c ? `${MARK[c.status]} ${cellText(c)}` : '—';
    });
    out.push(
      `| \`${row.sourceImageId}\` (${row.sourceRegion}) | ${escape(row.name)} | ${formatDuration(row.ageSeconds)} | ${cells.join(' | ')} |`,
    );
  }
  if (report.rows.length === 0)
    out.push(`| _no images in scope_ | | | ${report.drRegions.map(() => '').join(' | ')} |`);
  const notes = report.rows.flatMap((row) =>
    row.cells
      .filter((c) => c.status !== 'ready' && c.reason)
      .map((c) => `- \`${row.sourceImageId}\` → ${c.region}: **${c.status}** — ${escape(c.reason ?? '')}`),
  );
  if (notes.length) out.push('', '## Not ready', '', ...notes);
  return `${out.join('\n')}\n`;
}

const escape = (text: string): string => text.replace(/[|\\`*_<>]/g, (c) => `\\${c}`);
