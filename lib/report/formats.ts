/** The readiness report's formats; apart from the renderers so that `ami-dr --help` can list them cheaply. */
export const REPORT_FORMATS = ['table', 'json', 'markdown', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
