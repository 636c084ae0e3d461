import type { ReadinessReport } from '../domain/readiness.ts';
import { renderHtml } from './html.ts';
import { renderJson } from './json.ts';
import { renderMarkdown } from './markdown.ts';
import { renderTable } from './table.ts';
import type { ReportFormat } from './formats.ts';

export { REPORT_FORMATS, type ReportFormat } from './formats.ts';

export function renderReport(report: ReadinessReport, format: ReportFormat, options: { color?: boolean } = {}): string {
  switch (format) {
    case 'json':
      return renderJson(report);
    case 'markdown':
      return renderMarkdown(report);
    case 'html':
      return renderHtml(report);
    case 'table':
      return renderTable(report, { color: options.color ?? false });
  }
}

export { renderHtml, renderJson, renderMarkdown, renderTable };
