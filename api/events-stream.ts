/**
 * `GET /api/v1/events/stream`: Server-Sent Events of fleet events (fleet/events.ts) for operators, written straight
 * to the socket as the trust stream is (api/trust-stream.ts): each event formatted once for every subscriber, a
 * subscriber that leaves too much unread dropped, a heartbeat comment every `heartbeatMs`.
 *
 * Event ids are `{boot}-{seq}`. Resuming with `Last-Event-ID` replays the events after it from the in-memory ring
 * when this is the same gateway process and the ring still holds them; otherwise the stream starts with a `reset`
 * event (the client reloads what it shows) and goes on live. `?backlog=N` sends the newest N events first (a page
 * that opens shows what happened just before). A browser session's stream ends when the session does (checked at
 * every heartbeat).
 */
import type { ServerResponse } from 'node:http';
import type { FleetEvent } from '../protocol/index.js';

/** What the events route needs from the fleet core (fleet/events.ts FleetEvents answers it). */
export interface FleetEventSource {
  readonly seq: number;
  readonly boot: string;
  onEvent(listener: (event: FleetEvent) => void): () => void;
  since(seq: number): FleetEvent[] | undefined;
  recent(n: number): FleetEvent[];
}

export interface EventStreamLimits {
  maxSubscribers: number;
  heartbeatMs: number;
  maxBufferedBytes: number;
}

export const DEFAULT_EVENT_STREAM_LIMITS: EventStreamLimits = { maxSubscribers: 500, heartbeatMs: 15_000, maxBufferedBytes: 1024 * 1024 };

const EVENT_ID = /^([A-Za-z0-9_-]{1,16})-(\d{1,15})$/;

export function parseFleetEventId(id: string): { boot: string; seq: number } | undefined {
  const m = EVENT_ID.exec(id);
  return m ? { boot: m[1]!, seq: Number(m[2]) } : undefined;
}

interface Subscriber {
  res: ServerResponse;
  /** Still allowed to read (a browser session that ended is not). */
  alive: () => Promise<boolean>;
}

const frame = (name: string, data: unknown, id?: string) => `${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

export class FleetEventStreams {
  private readonly subscribers = new Set<Subscriber>();
  private heartbeat?: NodeJS.Timeout;
  private stopEvents?: () => void;
  dropped = 0;

  constructor(
    private readonly source: FleetEventSource,
    readonly limits: EventStreamLimits,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  get full(): boolean {
    return this.subscribers.size >= this.limits.maxSubscribers;
  }

  private format(event: FleetEvent): string {
    return frame('fleet', event, `${this.source.boot}-${event.seq}`);
  }

  private write(sub: Subscriber, text: string): void {
    if (sub.res.destroyed) return;
    if (sub.res.writableLength > this.limits.maxBufferedBytes) {
      this.dropped++;
      sub.res.destroy();
      return;
    }
    sub.res.write(text);
  }

  private beat(): void {
    for (const sub of this.subscribers) {
      sub.alive().then(
        (ok) => (ok ? this.write(sub, ': heartbeat\n\n') : sub.res.destroy()),
        () => sub.res.destroy(),
      );
    }
  }

  /** Takes over `res` (already hijacked). Synchronous from the ring to the first live event: nothing falls between. */
  open(res: ServerResponse, resume: { boot: string; seq: number } | undefined, backlog: number, alive: () => Promise<boolean>): void {
    if (this.subscribers.size === 0) {
      this.stopEvents = this.source.onEvent((e) => {
        const text = this.format(e);
        for (const sub of this.subscribers) this.write(sub, text);
      });
      this.heartbeat = setInterval(() => this.beat(), this.limits.heartbeatMs);
      this.heartbeat.unref();
    }
    const sub: Subscriber = { res, alive };
    this.subscribers.add(sub);
    res.once('close', () => this.remove(sub));
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Accel-Buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    let text = 'retry: 1000\n\n';
    if (resume) {
      const missed = resume.boot === this.source.boot ? this.source.since(resume.seq) : undefined;
      if (missed) text += missed.map((e) => this.format(e)).join('');
      else text += frame('reset', { reason: 'the events since this id are no longer held (or the gateway restarted): some may be missing' });
    } else {
      text += this.source.recent(backlog).map((e) => this.format(e)).join('');
    }
    text += frame('ready', { seq: this.source.seq, resumed: resume !== undefined }, `${this.source.boot}-${this.source.seq}`);
    this.write(sub, text);
  }

  private remove(sub: Subscriber): void {
    this.subscribers.delete(sub);
    if (this.subscribers.size === 0) {
      clearInterval(this.heartbeat);
      this.stopEvents?.();
      this.stopEvents = undefined;
    }
  }

  close(): void {
    for (const sub of this.subscribers) sub.res.destroy();
  }
}
