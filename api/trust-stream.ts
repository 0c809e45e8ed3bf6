/**
 * `GET /api/v1/trust/stream`: Server-Sent Events of score, device (state, current certificate) and revocation
 * changes, written straight to the socket (reply.hijack): each event is formatted and encoded once (one Buffer,
 * framed as an HTTP/1.1 chunk) and that same Buffer is written to every subscriber's socket, and a subscriber that
 * cannot keep up is dropped rather than buffered without bound. Not corked: each subscriber gets one write per
 * event, so there is nothing to coalesce (a feed event's several frames are one Buffer already).
 *
 * Event ids are `{feed}-{boot}-{scores}`: the inventory change-feed position the stream has delivered, this
 * gateway process's boot id, and its count of score changes. Resuming with `Last-Event-ID`:
 *  - feed changes after `{feed}` are replayed from the change feed (so nothing is missed across a dropped
 *    connection or a gateway restart): one `device` event with the device's current facts per device that
 *    changed, one `revoked` event per revocation; a feed that no longer holds them gives a `reset` event;
 *  - scores are not in the feed: with the same `{boot}` and `{scores}` within the last `scoreRing` changes, the
 *    current score of each device whose score changed since; otherwise (another process, or too old) the current
 *    score of every device. Either way the client ends up with every current score it may have missed.
 * Every stream then gets a `ready` event and live events. A comment line is sent every `heartbeatMs` so proxies
 * and clients can tell a quiet stream from a dead one.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FeedEvent, TrustEvent } from '../fleet/index.js';
import { type DeviceTrust, type TrustCheckResult, type TrustScoreEvent } from '../protocol/index.js';

/** What the trust routes need from the fleet core (fleet/trust.ts TrustCache answers it). */
export interface TrustOperations {
  device(id: string): DeviceTrust | undefined;
  check(pem: string, requirement: { minScore: number } | { topic: string; action: 'publish' | 'subscribe' }): TrustCheckResult;
  onEvent(listener: (event: TrustEvent) => void): () => void;
  scoresSince(boot: string | undefined, scoreSeq: number): TrustScoreEvent[];
  replay(from: number, to: number): Promise<FeedEvent[] | 'reset'>;
  readonly position: number;
  readonly scoreSeq: number;
  readonly boot: string;
}

export interface TrustStreamLimits {
  /** Open streams at once (more: 503 with Retry-After). */
  maxSubscribers: number;
  /** Interval of the heartbeat comment. */
  heartbeatMs: number;
  /** Bytes a subscriber may leave unread before it is dropped. */
  maxBufferedBytes: number;
}

export const DEFAULT_TRUST_STREAM_LIMITS: TrustStreamLimits = { maxSubscribers: 2_000, heartbeatMs: 15_000, maxBufferedBytes: 1024 * 1024 };

const LAST_EVENT_ID = /^(\d{1,15})-([A-Za-z0-9_-]{1,16})-(\d{1,15})$/;

/** A Last-Event-ID this gateway could have sent, or undefined (then a 400). */
export function parseEventId(id: string): { feed: number; boot: string; scores: number } | undefined {
  const m = LAST_EVENT_ID.exec(id);
  return m ? { feed: Number(m[1]), boot: m[2]!, scores: Number(m[3]) } : undefined;
}

interface Subscriber {
  res: ServerResponse;
  /**
   * The connection, written directly once the response head is out (null until then, or when the response is not
   * the connection's current one): one write of one shared buffer per event, without ServerResponse's per-write
   * chunk framing, string encoding and cork-until-next-tick for each of a thousand subscribers.
   */
  socket: Socket | null;
  /** HTTP/1.1 (chunked body) or HTTP/1.0 (the body runs until the connection closes). */
  chunked: boolean;
  /** Live events that came while the subscriber was catching up (null: live). */
  queue: Array<{ event: TrustEvent; frame: Frame }> | null;
}

const frame = (name: string, data: unknown, id?: string) => `${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

/** An event's bytes, serialised and encoded once for every subscriber: as an HTTP/1.1 chunk, or bare. */
class Frame {
  private chunk?: Buffer;
  private bare?: Buffer;
  constructor(readonly text: string) {}

  bytes(chunked: boolean): Buffer {
    if (!chunked) return (this.bare ??= Buffer.from(this.text, 'utf8'));
    if (!this.chunk) {
      const body = this.bare ?? Buffer.from(this.text, 'utf8');
      this.chunk = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, CRLF]);
    }
    return this.chunk;
  }
}
const CRLF = Buffer.from('\r\n', 'latin1');
const HEARTBEAT = new Frame(': heartbeat\n\n');

export class TrustStreams {
  private readonly subscribers = new Set<Subscriber>();
  private heartbeat?: NodeJS.Timeout;
  private stopEvents?: () => void;
  /** Streams dropped because they fell behind (tests, metrics). */
  dropped = 0;

  constructor(
    private readonly trust: TrustOperations,
    readonly limits: TrustStreamLimits,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  get full(): boolean {
    return this.subscribers.size >= this.limits.maxSubscribers;
  }

  private id(): string {
    return `${this.trust.position}-${this.trust.boot}-${this.trust.scoreSeq}`;
  }

  private format(event: TrustEvent, id: string): Frame {
    return new Frame(event.kind === 'score' ? frame('score', event.data, id) : feedFrames(event.events, id));
  }

  private write(sub: Subscriber, frame: Frame): void {
    if (sub.res.destroyed) return;
    // Back-pressure: a client that leaves this much unread is gone or too slow; it reconnects with Last-Event-ID.
    if (sub.res.writableLength > this.limits.maxBufferedBytes) {
      this.dropped++;
      sub.res.destroy();
      return;
    }
    if (sub.socket) sub.socket.write(frame.bytes(sub.chunked));
    else sub.res.write(frame.text);
  }

  private onEvent(event: TrustEvent): void {
    if (!this.subscribers.size) return;
    // Formatted once, with the id taken now (it says what this event brings a reader up to); every subscriber gets
    // the same bytes. No per-subscriber serialising, authorisation or copying: each stream's caller was
    // authorised when it opened, and its credential is watched apart from the events (api/credential-watch.ts).
    const shared = this.format(event, this.id());
    for (const sub of this.subscribers) {
      if (sub.queue) sub.queue.push({ event, frame: shared });
      else this.write(sub, shared);
    }
  }

  /** Takes over `res` (already hijacked) as a stream resuming after `lastEventId`, if any. */
  async open(res: ServerResponse, lastEventId: { feed: number; boot: string; scores: number } | undefined): Promise<void> {
    if (this.subscribers.size === 0) {
      this.stopEvents = this.trust.onEvent((e) => this.onEvent(e));
      this.heartbeat = setInterval(() => {
        for (const sub of this.subscribers) if (!sub.queue) this.write(sub, HEARTBEAT);
      }, this.limits.heartbeatMs);
      this.heartbeat.unref();
    }
    const sub: Subscriber = { res, socket: null, chunked: true, queue: lastEventId ? [] : null };
    this.subscribers.add(sub);
    res.once('close', () => this.remove(sub));
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Accel-Buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    // What this stream is caught up to once the replay below is written.
    const position = this.trust.position;
    const scoreSeq = this.trust.scoreSeq;
    const id = `${position}-${this.trust.boot}-${scoreSeq}`;
    let text = 'retry: 1000\n\n';
    if (lastEventId) {
      const parts: string[] = [];
      // A store that fails to answer is a reset for the client (load again), not a broken stream.
      const feed = lastEventId.feed > position ? 'reset' : await this.trust.replay(lastEventId.feed, position).catch(() => 'reset' as const);
      if (feed === 'reset') parts.push(frame('reset', { reason: 'the change feed no longer holds every change since this event id: load the devices again' }));
      else if (feed.length) parts.push(feedFrames(feed));
      for (const s of this.trust.scoresSince(lastEventId.boot, lastEventId.scores)) parts.push(frame('score', s));
      text += parts.join('');
    }
    text += frame('ready', { position, resumed: lastEventId !== undefined }, id);
    // Through the response: this write sends the head and decides the framing; later ones go to the socket.
    this.write(sub, new Frame(text));
    if (res.socket && !res.destroyed) {
      sub.socket = res.socket;
      sub.chunked = res.chunkedEncoding;
    }
    // Live events that came meanwhile, minus what the replay already covered.
    const queued = sub.queue ?? [];
    sub.queue = null;
    for (const { event, frame: queuedFrame } of queued) {
      if (event.kind === 'score' ? event.seq <= scoreSeq : event.position <= position) continue;
      this.write(sub, queuedFrame);
    }
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

/** A group of feed events; the id goes on the last one only, so a client cut off mid-group resumes before it. */
function feedFrames(events: FeedEvent[], id?: string): string {
  return events.map((e, i) => frame(e.name, e.data, i === events.length - 1 ? id : undefined)).join('');
}
