/**
 * Summarises repeated log lines, so that a client hammering a refused path cannot flood the logs (or the disk
 * behind them). The first `burst` lines per key and window are logged as they come; the rest are counted and
 * logged once per window as a summary with `repeated: N`. Keys are bounded: past `maxKeys` distinct keys in a
 * window, further ones share one overflow key, so an attacker varying its source address gains nothing.
 */
export interface LineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface LogThrottleOptions {
  /** Length of a window (default 60 s). */
  windowMs?: number;
  /** Lines logged per key per window before the rest are only counted (default 5). */
  burst?: number;
  /** Distinct keys tracked per window (default 1,000). */
  maxKeys?: number;
}

type Level = 'info' | 'warn';

interface Entry {
  level: Level;
  msg: string;
  sample: object;
  logged: number;
  suppressed: number;
}

const OVERFLOW_KEY = '\u0000overflow';

export class LogThrottle {
  private entries = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;
  private readonly windowMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  /** Lines suppressed since start (for metrics and tests). */
  suppressedTotal = 0;

  constructor(
    private readonly log: LineLogger,
    options: LogThrottleOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 60_000;
    this.burst = options.burst ?? 5;
    this.maxKeys = options.maxKeys ?? 1000;
    this.timer = setInterval(() => this.flush(), this.windowMs);
    this.timer.unref();
  }

  info(key: string, obj: object, msg: string): void {
    this.line('info', key, obj, msg);
  }

  warn(key: string, obj: object, msg: string): void {
    this.line('warn', key, obj, msg);
  }

  private line(level: Level, key: string, obj: object, msg: string): void {
    let entry = this.entries.get(key);
    if (!entry) {
      if (this.entries.size >= this.maxKeys) {
        key = OVERFLOW_KEY;
        entry = this.entries.get(key);
        msg = 'log lines from too many distinct sources';
        obj = {};
      }
      if (!entry) this.entries.set(key, (entry = { level, msg, sample: obj, logged: 0, suppressed: 0 }));
    }
    if (entry.logged < this.burst && key !== OVERFLOW_KEY) {
      entry.logged++;
      this.log[level](obj, msg);
    } else {
      entry.suppressed++;
      this.suppressedTotal++;
    }
  }

  /** Ends the window: one summary line per key that had lines suppressed. */
  flush(): void {
    const entries = this.entries;
    this.entries = new Map();
    for (const entry of entries.values()) {
      if (entry.suppressed > 0) {
        this.log[entry.level]({ ...entry.sample, repeated: entry.suppressed, windowMs: this.windowMs }, `${entry.msg} (repeated)`);
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
