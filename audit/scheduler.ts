/**
 * The gateway's scheduled audit: runs every `intervalMs` (daily by default; the first run `firstRunMs` after the
 * start, so the API has a result the first day), keeps the latest run for the API, and reports the critical
 * findings a run has that the run before it did not (a new critical finding becomes a fleet event). Runs never
 * overlap; a run that fails is logged and the schedule goes on.
 */
import type { AuditFinding, AuditRun } from '../protocol/index.js';
import { findingKey, runChecks } from './checks.js';
import type { AuditFacts } from './facts.js';

export const DEFAULT_AUDIT_INTERVAL_MS = 86_400_000;
export const DEFAULT_AUDIT_FIRST_RUN_MS = 300_000;

export interface AuditSchedulerOptions {
  intervalMs?: number;
  firstRunMs?: number;
  collect(): Promise<AuditFacts>;
  /** After each run, with its critical findings that the previous run did not have. */
  onRun?(run: AuditRun, newCritical: AuditFinding[]): void;
  onError?(err: Error): void;
  now?: () => number;
}

export class AuditScheduler {
  private latestRun: AuditRun | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<AuditRun> | undefined;
  private next: number | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly options: AuditSchedulerOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): this {
    this.schedule(this.options.firstRunMs ?? DEFAULT_AUDIT_FIRST_RUN_MS);
    return this;
  }

  get latest(): AuditRun | undefined {
    return this.latestRun;
  }

  /** When the next scheduled run starts (undefined: none scheduled). */
  get nextRunAt(): number | undefined {
    return this.next;
  }

  /** Runs an audit now (joins one under way). */
  run(): Promise<AuditRun> {
    this.running ??= (async () => {
      const started = this.now();
      const facts = await this.options.collect();
      const run = runChecks(facts, started);
      const before = new Set((this.latestRun?.findings ?? []).filter((f) => f.severity === 'critical').map(findingKey));
      const fresh = run.findings.filter((f) => f.severity === 'critical' && !before.has(findingKey(f)));
      this.latestRun = run;
      this.options.onRun?.(run, fresh);
      return run;
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(delay: number): void {
    if (this.closed) return;
    this.next = this.now() + delay;
    this.timer = setTimeout(() => {
      this.next = undefined;
      this.run()
        .catch((err: Error) => this.options.onError?.(err))
        .finally(() => this.schedule(this.options.intervalMs ?? DEFAULT_AUDIT_INTERVAL_MS));
    }, delay);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.next = undefined;
    await this.running?.catch(() => undefined);
  }
}
