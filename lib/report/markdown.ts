import type { ReadinessReport, ReadinessStatus } from '../domain/readiness.ts';
import { cellText, formatDuration, formatPercent, STATUS_LABEL, whereOf } from './format.ts';
import { gapsOf } from './gaps.ts';
import { plural } from '../domain/text.ts';

const MARK: Record<ReadinessStatus, string> = {
  ready: '✅',
  'in-progress': '⏳',
  missing: '❌',
  failed: '🛑',
  drifted: '⚠️',
};

/** For pull requests, wikis and chat: what is not ready and why (worst first), then the matrix as a GitHub table. */
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
    ...notReady(report),
    '## Matrix',
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
      `| \`${row.sourceImageId}\` (${whereOf(report, row)}) | ${escape(row.name)} | ${formatDuration(row.ageSeconds)} | ${cells.join(' | ')} |`,
    );
  }
  if (report.rows.length === 0)
    out.push(`| _no images in scope_ | | | ${report.drRegions.map(() => '').join(' | ')} |`);
  return `${out.join('\n')}\n`;
}

function notReady(report: ReadinessReport): string[] {
  const gaps = gapsOf(report);
  if (!gaps.length) return ['## Not ready', '', 'Every image is ready in every DR region.', ''];
  return [
    `## Not ready (${gaps.length} of ${plural(report.summary.cells, 'cell')})`,
    '',
    '| Status | Image | Name | DR region | Age | Reason |',
    '|---|---|---|---|---|---|',
    ...gaps.map(
      ({ row, cell }) =>
        `| ${MARK[cell.status]} **${STATUS_LABEL[cell.status]}** | \`${row.sourceImageId}\` (${whereOf(report, row)}) | ${escape(row.name)} | ` +
        `${cell.region} | ${formatDuration(row.ageSeconds)} | ${escape(cell.reason ?? '')} |`,
    ),
    '',
  ];
}

/** Markdown-significant characters escaped, line breaks flattened: one table cell stays one cell. */
const escape = (text: string): string => text.replace(/[|\\`*_<>]/g, (c) => `\\${c}`).replace(/\s*[\r\n]+\s*/g, ' ');
