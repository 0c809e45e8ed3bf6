/** report/: compliance reports (issue 19) from the audit's facts: the mapping, HTML, PDF (Chromium) and JSON. */
export { buildComplianceReport, PROVISIONS, provisionKey } from './compliance.js';
export { renderComplianceHtml, escapeHtml } from './html.js';
export { htmlToPdf, findChromium, ChromiumMissingError } from './pdf.js';
export { renderPdf } from './pdf.js';
export { ComplianceReports, ReportBusyError, DEFAULT_REPORT_CACHE_MS, DEFAULT_REPORT_MAX_WAITING, type ComplianceReportsOptions, type RenderedReport } from './service.js';
