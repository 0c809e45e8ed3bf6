/**
 * InfluxDB writer: line protocol from @influxdata/influxdb-client's `Point`, sent by our own batching sender.
 *
 * Why not the client's WriteApi: it only speaks /api/v2/write (absent on InfluxDB 1.x, which is what Debian
 * ships), keeps retries in memory only, and treats 404 as retriable for minutes. We need the v1 /write API by
 * default, retries on network errors and 5xx only, and a bounded on-disk spool so an outage loses no point.
 *
 * Flow: add() → memory queue → POST in batches. A batch that fails with a retriable error is written to the spool
 * directory (one file per batch, atomically) and retried from there with exponential backoff, oldest first;
 * while InfluxDB is down, new batches go to the spool too. Spool files survive a restart and are sent then.
 */
import { Point } from '@influxdata/influxdb-client';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../lib/atomic-file.js';
import ms from 'ms';

export { Point };

export interface InfluxOptions {
  /** Base URL, e.g. http://127.0.0.1:8086 */
  url: string;
  /** 'v1' (default): POST /write?db=&rp=&precision=ms, works on 1.x, 2.x with a DBRP mapping, and 3.x. */
  api?: 'v1' | 'v2';
  database?: string;
  retentionPolicy?: string;
  org?: string;
  bucket?: string;
  /** Sent as `Authorization: Token …` (2.x/3.x; 1.x with auth accepts username/password instead). */
  token?: string;
  username?: string;
  password?: string;
  /** Create the database on start (v1 API only; harmless when it exists). */
  createDatabase?: boolean;
  batchSize?: number;
  flushIntervalMs?: number;
  spoolDir: string;
  spoolMaxBytes?: number;
  /** Upper bound of the retry backoff. */
  maxRetryDelayMs?: number;
  requestTimeoutMs?: number;
  log?: Logger;
}

export interface InfluxStats {
  written: number;
  queued: number;
  spooledBatches: number;
  spoolBytes: number;
  dropped: number;
  failures: number;
}

class WriteError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
  ) {
    super(message);
  }
}

/** Milliseconds since the epoch, matching precision=ms. */
const convertTime = (value: string | number | Date | undefined): string | undefined =>
  value === undefined ? undefined : value instanceof Date ? String(value.getTime()) : String(value);

export function toLine(point: Point): string | undefined {
  return point.toLineProtocol({ convertTime });
}

export class InfluxWriter {
  private queue: string[] = [];
  private readonly batchSize: number;
  private readonly spoolMaxBytes: number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private retryAt = 0;
  private retryDelay = 0;
  private seq = 0;
  private closed = false;
  private ready: Promise<void> = Promise.resolve();
  readonly stats: InfluxStats = { written: 0, queued: 0, spooledBatches: 0, spoolBytes: 0, dropped: 0, failures: 0 };

  constructor(private readonly options: InfluxOptions) {
    this.batchSize = options.batchSize ?? 5000;
    this.spoolMaxBytes = options.spoolMaxBytes ?? 256 * 1024 * 1024;
    mkdirSync(options.spoolDir, { recursive: true, mode: 0o700 });
    const files = this.spoolFiles();
    this.seq = files.length ? Number(files[files.length - 1]!.split('.')[0]) + 1 : 0;
    this.refreshSpoolStats();
  }

  /** Starts the flush timer. Creating the database runs in the background: InfluxDB being down (or a name that
   * does not resolve yet) must not hold up the gateway; writes wait for that attempt, then spool as usual. */
  async start(): Promise<void> {
    if ((this.options.api ?? 'v1') === 'v1' && this.options.createDatabase !== false) {
      this.ready = this.query(`CREATE DATABASE "${this.database().replace(/"/g, '')}"`).then(
        () => undefined,
        (err: Error) => this.options.log?.warn({ err: err.message }, 'InfluxDB: could not create the database (will keep trying to write)'),
      );
    }
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  private database(): string {
    return this.options.database ?? 'wott';
  }

  /** Queues points; a full batch is sent at once. */
  add(points: Point[]): void {
    for (const p of points) {
      const line = toLine(p);
      if (line) this.queue.push(line);
    }
    this.stats.queued = this.queue.length;
    if (this.queue.length >= this.batchSize) void this.flush();
  }

  /** Sends what can be sent now: spooled batches first, then the memory queue. Never throws. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    await this.ready;
    while (true) {
      const down = Date.now() < this.retryAt;
      const spooled = this.spoolFiles();
      if (spooled.length > 0) {
        // While InfluxDB is down, keep memory small by moving full batches to disk.
        if (down) {
          this.spillQueue(false);
          return;
        }
        const file = join(this.options.spoolDir, spooled[0]!);
        const body = readFileSync(file, 'utf8');
        if (!(await this.trySend(body))) {
          this.spillQueue(false);
          return;
        }
        unlinkSync(file);
        this.refreshSpoolStats();
        continue;
      }
      if (this.queue.length === 0) return;
      if (down) {
        this.spillQueue(false);
        return;
      }
      const batch = this.queue.splice(0, this.batchSize);
      this.stats.queued = this.queue.length;
      const body = batch.join('\n');
      if (!(await this.trySend(body, () => this.spool(body)))) {
        this.spillQueue(false);
        return;
      }
    }
  }

  /** true when sent (or dropped as unsendable); false on a retriable failure (after `onRetriable`). */
  private async trySend(body: string, onRetriable?: () => void): Promise<boolean> {
    try {
      await this.send(body);
      this.stats.written += countLines(body);
      this.retryDelay = 0;
      this.retryAt = 0;
      return true;
    } catch (err) {
      this.stats.failures++;
      if (err instanceof WriteError && !err.retriable) {
        // A 4xx will fail again however often it is retried: drop it rather than block everything behind it.
        this.stats.dropped += countLines(body);
        this.options.log?.error({ err: err.message }, 'InfluxDB refused a batch; dropped it');
        return true;
      }
      onRetriable?.();
      this.retryDelay = Math.min(this.options.maxRetryDelayMs ?? 30_000, Math.max(500, this.retryDelay * 2));
      this.retryAt = Date.now() + this.retryDelay;
      this.options.log?.warn({ err: (err as Error).message, retryIn: ms(this.retryDelay), spooledBatches: this.stats.spooledBatches }, 'InfluxDB write failed; spooling');
      return false;
    }
  }

  /** Moves the memory queue to spool files (all of it when `all`, else whole batches only). */
  private spillQueue(all: boolean): void {
    while (this.queue.length >= this.batchSize || (all && this.queue.length > 0)) {
      this.spool(this.queue.splice(0, this.batchSize).join('\n'));
    }
    this.stats.queued = this.queue.length;
  }

  private spool(body: string): void {
    const name = `${String(this.seq++).padStart(12, '0')}.lp`;
    writeFileAtomic(join(this.options.spoolDir, name), body + '\n', 0o600);
    this.refreshSpoolStats();
    // Bounded: the oldest batches go first, and are counted.
    const files = this.spoolFiles();
    while (this.stats.spoolBytes > this.spoolMaxBytes && files.length > 1) {
      const oldest = join(this.options.spoolDir, files.shift()!);
      const lines = countLines(readFileSync(oldest, 'utf8'));
      unlinkSync(oldest);
      this.stats.dropped += lines;
      this.options.log?.error({ lines }, 'InfluxDB spool full: dropped the oldest batch');
      this.refreshSpoolStats();
    }
  }

  private spoolFiles(): string[] {
    return readdirSync(this.options.spoolDir)
      .filter((f) => /^\d{12}\.lp$/.test(f))
      .sort();
  }

  private refreshSpoolStats(): void {
    const files = this.spoolFiles();
    this.stats.spooledBatches = files.length;
    this.stats.spoolBytes = files.reduce((n, f) => n + statSync(join(this.options.spoolDir, f)).size, 0);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
    if (this.options.token) h.Authorization = `Token ${this.options.token}`;
    else if (this.options.username) h.Authorization = `Basic ${Buffer.from(`${this.options.username}:${this.options.password ?? ''}`).toString('base64')}`;
    return h;
  }

  private writeUrl(): string {
    const o = this.options;
    const url = new URL(o.api === 'v2' ? '/api/v2/write' : '/write', o.url);
    if (o.api === 'v2') {
      url.searchParams.set('org', o.org ?? '');
      url.searchParams.set('bucket', o.bucket ?? this.database());
      url.searchParams.set('precision', 'ms');
    } else {
      url.searchParams.set('db', this.database());
      if (o.retentionPolicy) url.searchParams.set('rp', o.retentionPolicy);
      url.searchParams.set('precision', 'ms');
    }
    return url.toString();
  }

  private async send(body: string): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.writeUrl(), { method: 'POST', headers: this.headers(), body, signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000) });
    } catch (err) {
      throw new WriteError(`network: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, true);
    }
    if (res.ok) {
      await res.arrayBuffer();
      return;
    }
    const text = (await res.text().catch(() => '')).slice(0, 300);
    throw new WriteError(`HTTP ${res.status}: ${text}`, res.status >= 500);
  }

  /** InfluxQL over the v1 /query API (used to create the database; tests read back with it). */
  async query(q: string, db?: string): Promise<unknown> {
    const url = new URL('/query', this.options.url);
    if (db) url.searchParams.set('db', db);
    const res = await fetch(url, { method: 'POST', headers: { ...this.headers(), 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ q }).toString(), signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`InfluxDB query failed: HTTP ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as unknown;
  }

  /** Stops the timer, tries one last send, and spools whatever is left so nothing is lost on shutdown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flushing;
    if (Date.now() >= this.retryAt) await this.flush();
    this.spillQueue(true);
  }
}

function countLines(body: string): number {
  let n = 0;
  for (const line of body.split('\n')) if (line.length > 0) n++;
  return n;
}
