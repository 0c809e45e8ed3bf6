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
import type { FeedEvent, TrustEvent } from '../fleet/index.js';
import { type DeviceTrust, type TrustCheckResult, type TrustScoreEvent } from '../protocol/index.js';
import { SSE_HEARTBEAT, SseFrame, SseHub, sseText, type SseLimits, type SseSubscriber } from './sse.js';

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

/** Open streams, heartbeat interval and unread bytes allowed per reader (see api/sse.ts). */
export type TrustStreamLimits = SseLimits;

export const DEFAULT_TRUST_STREAM_LIMITS: TrustStreamLimits = { maxSubscribers: 2_000, heartbeatMs: 15_000, maxBufferedBytes: 1024 * 1024 };

const LAST_EVENT_ID = /^(\d{1,15})-([A-Za-z0-9_-]{1,16})-(\d{1,15})$/;

/** A Last-Event-ID this gateway could have sent, or undefined (then a 400). */
export function parseEventId(id: string): { feed: number; boot: string; scores: number } | undefined {
  const m = LAST_EVENT_ID.exec(id);
  return m ? { feed: Number(m[1]), boot: m[2]!, scores: Number(m[3]) } : undefined;
}

interface Subscriber extends SseSubscriber {
  /** Live events that came while the subscriber was catching up (null: live). */
  queue: Array<{ event: TrustEvent; frame: SseFrame }> | null;
}

export class TrustStreams {
  private readonly hub: SseHub<Subscriber>;

  constructor(
    private readonly trust: TrustOperations,
    readonly limits: TrustStreamLimits,
  ) {
    this.hub = new SseHub<Subscriber>(limits, {
      listen: () => this.trust.onEvent((e) => this.onEvent(e)),
      heartbeat: (sub) => {
        if (!sub.queue) this.hub.write(sub, SSE_HEARTBEAT);
      },
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

  private id(): string {
    return `${this.trust.position}-${this.trust.boot}-${this.trust.scoreSeq}`;
  }

  private format(event: TrustEvent, id: string): SseFrame {
    return new SseFrame(event.kind === 'score' ? sseText('score', event.data, id) : feedFrames(event.events, id));
  }

  private onEvent(event: TrustEvent): void {
    if (!this.hub.size) return;
    // Formatted once, with the id taken now (it says what this event brings a reader up to); every subscriber gets
    // the same bytes. No per-subscriber serialising, authorisation or copying: each stream's caller was
    // authorised when it opened, and its credential is watched apart from the events (api/credential-watch.ts).
    const shared = this.format(event, this.id());
    for (const sub of this.hub.subscribers) {
      if (sub.queue) sub.queue.push({ event, frame: shared });
      else this.hub.write(sub, shared);
    }
  }

  /** Takes over `res` (already hijacked) as a stream resuming after `lastEventId`, if any. */
  async open(res: ServerResponse, lastEventId: { feed: number; boot: string; scores: number } | undefined): Promise<void> {
    const sub: Subscriber = { res, socket: null, chunked: true, queue: lastEventId ? [] : null };
    this.hub.add(sub);
    // What this stream is caught up to once the replay below is written.
    const position = this.trust.position;
    const scoreSeq = this.trust.scoreSeq;
    const id = `${position}-${this.trust.boot}-${scoreSeq}`;
    let text = 'retry: 1000\n\n';
    if (lastEventId) {
      const parts: string[] = [];
      // A store that fails to answer is a reset for the client (load again), not a broken stream.
      const feed = lastEventId.feed > position ? 'reset' : await this.trust.replay(lastEventId.feed, position).catch(() => 'reset' as const);
      if (feed === 'reset') parts.push(sseText('reset', { reason: 'the change feed no longer holds every change since this event id: load the devices again' }));
      else if (feed.length) parts.push(feedFrames(feed));
      for (const s of this.trust.scoresSince(lastEventId.boot, lastEventId.scores)) parts.push(sseText('score', s));
      text += parts.join('');
    }
    text += sseText('ready', { position, resumed: lastEventId !== undefined }, id);
    this.hub.start(sub, text);
    // Live events that came meanwhile, minus what the replay already covered.
    const queued = sub.queue ?? [];
    sub.queue = null;
    for (const { event, frame: queuedFrame } of queued) {
      if (event.kind === 'score' ? event.seq <= scoreSeq : event.position <= position) continue;
      this.hub.write(sub, queuedFrame);
    }
  }

  close(): void {
    this.hub.close();
  }
}

/** A group of feed events; the id goes on the last one only, so a client cut off mid-group resumes before it. */
function feedFrames(events: FeedEvent[], id?: string): string {
  return events.map((e, i) => sseText(e.name, e.data, i === events.length - 1 ? id : undefined)).join('');
}
