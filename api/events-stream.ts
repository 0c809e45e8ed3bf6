/**
 * `GET /api/v1/events/stream`: Server-Sent Events of fleet events (fleet/events.ts) for operators, written straight
 * to the socket through the same plumbing as the trust stream (api/sse.ts): each event formatted once for every
 * subscriber, a subscriber that leaves too much unread dropped, a heartbeat comment every `heartbeatMs`.
 *
 * Event ids are `{boot}-{seq}`. Resuming with `Last-Event-ID` replays the events after it from the in-memory ring
 * when this is the same gateway process and the ring still holds them; otherwise the stream starts with a `reset`
 * event (the client reloads what it shows) and goes on live. `?backlog=N` sends the newest N events first (a page
 * that opens shows what happened just before). A browser session's stream ends when the session does (checked at
 * every heartbeat).
 */
import type { ServerResponse } from 'node:http';
import type { FleetEvent } from '../protocol/index.js';
import { SSE_HEARTBEAT, SseFrame, SseHub, sseText, type SseLimits, type SseSubscriber } from './sse.js';

/** What the events route needs from the fleet core (fleet/events.ts FleetEvents answers it). */
export interface FleetEventSource {
  readonly seq: number;
  readonly boot: string;
  onEvent(listener: (event: FleetEvent) => void): () => void;
  since(seq: number): FleetEvent[] | undefined;
  recent(n: number): FleetEvent[];
}

/** Open streams, heartbeat interval and unread bytes allowed per reader (see api/sse.ts). */
export type EventStreamLimits = SseLimits;

export const DEFAULT_EVENT_STREAM_LIMITS: EventStreamLimits = { maxSubscribers: 500, heartbeatMs: 15_000, maxBufferedBytes: 1024 * 1024 };

const EVENT_ID = /^([A-Za-z0-9_-]{1,16})-(\d{1,15})$/;

export function parseFleetEventId(id: string): { boot: string; seq: number } | undefined {
  const m = EVENT_ID.exec(id);
  return m ? { boot: m[1]!, seq: Number(m[2]) } : undefined;
}

interface Subscriber extends SseSubscriber {
  /** Still allowed to read (a browser session that ended is not). */
  alive: () => Promise<boolean>;
}

export class FleetEventStreams {
  private readonly hub: SseHub<Subscriber>;

  constructor(
    private readonly source: FleetEventSource,
    readonly limits: EventStreamLimits,
  ) {
    this.hub = new SseHub<Subscriber>(limits, {
      listen: () =>
        this.source.onEvent((e) => {
          const shared = new SseFrame(this.format(e));
          for (const sub of this.hub.subscribers) this.hub.write(sub, shared);
        }),
      heartbeat: (sub) =>
        sub.alive().then(
          (ok) => (ok ? this.hub.write(sub, SSE_HEARTBEAT) : sub.res.destroy()),
          () => sub.res.destroy(),
        ),
    });
  }

  get size(): number {
    return this.hub.size;
  }

  get full(): boolean {
    return this.hub.full;
  }

  /** Streams dropped because they fell behind (tests, metrics). */
  get dropped(): number {
    return this.hub.dropped;
  }

  private format(event: FleetEvent): string {
    return sseText('fleet', event, `${this.source.boot}-${event.seq}`);
  }

  /** Takes over `res` (already hijacked). Synchronous from the ring to the first live event: nothing falls between. */
  open(res: ServerResponse, resume: { boot: string; seq: number } | undefined, backlog: number, alive: () => Promise<boolean>): void {
    const sub: Subscriber = { res, socket: null, chunked: true, alive };
    this.hub.add(sub);
    let text = 'retry: 1000\n\n';
    if (resume) {
      const missed = resume.boot === this.source.boot ? this.source.since(resume.seq) : undefined;
      if (missed) text += missed.map((e) => this.format(e)).join('');
      else text += sseText('reset', { reason: 'the events since this id are no longer held (or the gateway restarted): some may be missing' });
    } else {
      text += this.source.recent(backlog).map((e) => this.format(e)).join('');
    }
    text += sseText('ready', { seq: this.source.seq, resumed: resume !== undefined }, `${this.source.boot}-${this.source.seq}`);
    this.hub.start(sub, text);
  }

  close(): void {
    this.hub.close();
  }
}
