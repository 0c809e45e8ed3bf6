/**
 * The Server-Sent Events plumbing shared by the trust stream (api/trust-stream.ts) and the fleet events stream
 * (api/events-stream.ts): open streams written straight to the socket (reply.hijack), each event formatted and
 * encoded once (one Buffer, framed as an HTTP/1.1 chunk) and that same Buffer written to every subscriber, a
 * subscriber that leaves too much unread dropped rather than buffered without bound, and a heartbeat timer that
 * runs only while someone listens. Hand-written because @fastify/sse and its kin format and write per subscriber,
 * which is what a thousand-reader fan-out cannot afford (profiled in issue 13).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface SseLimits {
  /** Open streams at once (more: 503 with Retry-After). */
  maxSubscribers: number;
  /** Interval of the heartbeat comment. */
  heartbeatMs: number;
  /** Bytes a subscriber may leave unread before it is dropped. */
  maxBufferedBytes: number;
}

/** One event in SSE text form. */
export const sseText = (name: string, data: unknown, id?: string): string =>
  `${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

const CRLF = Buffer.from('\r\n', 'latin1');

/** An event's bytes, serialised and encoded once for every subscriber: as an HTTP/1.1 chunk, or bare. */
export class SseFrame {
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

export const SSE_HEARTBEAT = new SseFrame(': heartbeat\n\n');

export interface SseSubscriber {
  res: ServerResponse;
  /**
   * The connection, written directly once the response head is out (null until then, or when the response is not
   * the connection's current one): one write of one shared buffer per event, without ServerResponse's per-write
   * chunk framing, string encoding and cork-until-next-tick for each of a thousand subscribers.
   */
  socket: Socket | null;
  /** HTTP/1.1 (chunked body) or HTTP/1.0 (the body runs until the connection closes). */
  chunked: boolean;
}

export interface SseHubHooks<S extends SseSubscriber> {
  /** Starts listening to the event source when the first subscriber comes; returns how to stop. */
  listen(): () => void;
  /** What the heartbeat does for one subscriber (write SSE_HEARTBEAT, or check its credential first). */
  heartbeat(sub: S): void;
}

export class SseHub<S extends SseSubscriber> {
  readonly subscribers = new Set<S>();
  private timer?: NodeJS.Timeout;
  private stopSource?: () => void;
  /** Streams dropped because they fell behind (tests, metrics). */
  dropped = 0;

  constructor(
    readonly limits: SseLimits,
    private readonly hooks: SseHubHooks<S>,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  get full(): boolean {
    return this.subscribers.size >= this.limits.maxSubscribers;
  }

  /** Registers `sub` and sends the response head; the first write (`start`) then adopts the socket. */
  add(sub: S): void {
    if (this.subscribers.size === 0) {
      this.stopSource = this.hooks.listen();
      this.timer = setInterval(() => {
        for (const s of this.subscribers) this.hooks.heartbeat(s);
      }, this.limits.heartbeatMs);
      this.timer.unref();
    }
    this.subscribers.add(sub);
    sub.res.once('close', () => this.remove(sub));
    sub.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Accel-Buffering': 'no',
    });
    sub.res.socket?.setNoDelay(true);
  }

  /** The stream's first bytes, through the response (this decides the framing); later writes go to the socket. */
  start(sub: S, text: string): void {
    this.write(sub, new SseFrame(text));
    if (sub.res.socket && !sub.res.destroyed) {
      sub.socket = sub.res.socket;
      sub.chunked = sub.res.chunkedEncoding;
    }
  }

  write(sub: S, frame: SseFrame): void {
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

  private remove(sub: S): void {
    this.subscribers.delete(sub);
    if (this.subscribers.size === 0) {
      clearInterval(this.timer);
      this.stopSource?.();
      this.stopSource = undefined;
    }
  }

  close(): void {
    for (const sub of this.subscribers) sub.res.destroy();
  }
}
