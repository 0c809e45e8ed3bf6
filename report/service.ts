/**
 * The compliance report as a use case, shared by `wott report compliance` (the CLI) and
 * GET /api/v1/reports/compliance (the gateway): collect the facts, run the checks, build the report against the
 * previous one's summary (the trend), save its summary for the next one, and render it as JSON, HTML or PDF.
 *
 * The gateway must not let callers make it print PDFs without bound, so:
 * - a built report is served for `cacheMs` (60 s by default): every request in that window, whatever its format,
 *   gets that same report (the same generatedAt), and each format is rendered once for it;
 * - the work (building, and Chromium's print) runs one piece at a time; requests that need the same piece join it;
 * - at most `maxWaiting` requests wait for work at a time; beyond that the caller is told to retry (ReportBusyError).
 * So Chromium runs at most once per `cacheMs`, whatever the number of callers.
 */
import { runChecks, type AuditFacts } from '../audit/index.js';
import { complianceSummarySchema, REPORT_MEDIA_TYPES, type ComplianceReport, type ReportFormat } from '../protocol/index.js';
import type { ReportHistoryStore } from '../store/index.js';
import { buildComplianceReport } from './compliance.js';
import { renderComplianceHtml } from './html.js';
import { renderPdf } from './pdf.js';

export const DEFAULT_REPORT_CACHE_MS = 60_000;
export const DEFAULT_REPORT_MAX_WAITING = 8;

export interface ComplianceReportsOptions {
  /** One facts snapshot (the gateway's with the live broker; the CLI's from the data folder). */
  collect(): Promise<AuditFacts>;
  /** Where the previous report's summary is kept (the trend). */
  history: ReportHistoryStore;
  /** How long a built report is served before a request builds a new one (0: every request builds one). */
  cacheMs?: number;
  /** Requests that may wait for work at once; more are refused with ReportBusyError. */
  maxWaiting?: number;
  /** HTML → PDF (default: Debian's chromium, report/pdf.ts). */
  pdf?: (html: string) => Promise<Buffer>;
  now?: () => number;
}

export interface RenderedReport {
  format: ReportFormat;
  contentType: string;
  /** A download name made of the report's time only (never of input). */
  filename: string;
  body: Buffer;
  report: ComplianceReport;
}

/** Too many report requests wait already: retry after `retryAfterSeconds`. */
export class ReportBusyError extends Error {
  override name = 'ReportBusyError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

interface Built {
  report: ComplianceReport;
  startedAt: number;
  bodies: Map<ReportFormat, Promise<Buffer>>;
  /** The bodies printed already (the fast path: no waiting, no queue). */
  done: Map<ReportFormat, Buffer>;
}

export class ComplianceReports {
  private latest: Promise<Built> | undefined;
  private latestAt = 0;
  /** `latest` once it is built. */
  private readyBuilt: Built | undefined;
  /** The tail of the one-at-a-time work queue. */
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private readonly now: () => number;
  /** What ran (for tests and the log): reports built, PDFs printed. */
  readonly stats = { builds: 0, pdfs: 0 };

  constructor(private readonly options: ComplianceReportsOptions) {
    this.now = options.now ?? Date.now;
  }

  get cacheMs(): number {
    return this.options.cacheMs ?? DEFAULT_REPORT_CACHE_MS;
  }

  /** The current report in `format`; throws ReportBusyError when too many requests wait already. */
  async render(format: ReportFormat): Promise<RenderedReport> {
    const ready = this.readyBuilt?.done.get(format);
    if (ready && this.fresh() && this.readyBuilt!.startedAt === this.latestAt) return this.answer(format, this.readyBuilt!, ready);
    const max = this.options.maxWaiting ?? DEFAULT_REPORT_MAX_WAITING;
    if (this.waiting >= max) {
      throw new ReportBusyError(`${this.waiting} compliance report requests are being worked on already (the gateway builds one report at a time); retry shortly`, Math.max(1, Math.ceil(this.cacheMs / 1000 / 4)));
    }
    this.waiting++;
    try {
      const built = await this.built();
      let body = built.bodies.get(format);
      if (!body) {
        body = this.serial(() => this.renderBody(built.report, format));
        built.bodies.set(format, body);
        body.then(
          (b) => built.done.set(format, b),
          () => built.bodies.delete(format), // a failed print is not kept: the next request tries again
        );
      }
      return this.answer(format, built, await body);
    } finally {
      this.waiting--;
    }
  }

  /** The built report still within its cache time, if any. */
  private fresh(): Promise<Built> | undefined {
    return this.latest && this.now() - this.latestAt < this.cacheMs ? this.latest : undefined;
  }

  private built(): Promise<Built> {
    const fresh = this.fresh();
    if (fresh) return fresh;
    const started = this.now();
    const building = this.serial(async () => {
      const facts = await this.options.collect();
      const run = runChecks(facts, started);
      const last = complianceSummarySchema.safeParse(await this.options.history.last('compliance'));
      const report = buildComplianceReport(facts, run, last.success ? last.data : null);
      await this.options.history.save('compliance', report.summary);
      this.stats.builds++;
      const built: Built = { report, startedAt: started, bodies: new Map(), done: new Map() };
      this.readyBuilt = built;
      return built;
    });
    this.latest = building;
    this.latestAt = started;
    building.catch(() => {
      if (this.latest === building) this.latest = undefined;
    });
    return building;
  }

  private async renderBody(report: ComplianceReport, format: ReportFormat): Promise<Buffer> {
    if (format === 'json') return Buffer.from(JSON.stringify(report, null, 2) + '\n');
    const html = renderComplianceHtml(report);
    if (format === 'html') return Buffer.from(html);
    const pdf = await (this.options.pdf ?? ((h: string) => renderPdf(h)))(html);
    this.stats.pdfs++;
    return pdf;
  }

  /** Runs `work` after everything queued before it. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private answer(format: ReportFormat, built: Built, body: Buffer): RenderedReport {
    const stamp = built.report.generatedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    return { format, contentType: REPORT_MEDIA_TYPES[format], filename: `wott-compliance-${stamp}.${format}`, body, report: built.report };
  }
}
