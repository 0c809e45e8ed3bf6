/**
 * A child process of `npm run bench -- api` that holds some of the 1,000 `/trust/stream` subscribers.
 *
 * What it measures is when each subscriber *received* an event: the moment the decrypted bytes reach this process
 * (the socket's 'data'), on CLOCK_MONOTONIC (process.hrtime.bigint), which the gateway process shares, so the
 * gateway's stamp in the event and this receipt time are on one clock. Receipt does as little as it can (a time
 * and a reference to the chunk): 1,000 subscribers share two cores with the gateway here, and every microsecond a
 * reader spends parsing delays the next socket's receipt, which is the bench measuring itself. So the HTTP framing
 * (chunked), the SSE parsing (eventsource-parser) and the JSON are read after each round, and checked: every
 * subscriber must have received every change, as a well-formed score event of the benchmark's device.
 *
 * Raw TLS sockets rather than node:https: the same bytes, without the HTTP client's per-chunk stream machinery in
 * the receipt path.
 */
import { connect, type TLSSocket } from 'node:tls';
import { createParser, type EventSourceParser } from 'eventsource-parser';

export interface ReaderOpen {
  type: 'open';
  port: number;
  path: string;
  ca: string;
  cert: string;
  key: string;
  count: number;
}
export type ReaderRequest = ReaderOpen | { type: 'round' } | { type: 'exit' };
export type ReaderReply =
  | { type: 'ready' }
  | { type: 'round'; latencies: number[]; malformed: number; other: number; cpuMs: number }
  | { type: 'error'; message: string };

/** Chunked transfer-encoding of one HTTP response, decoded as its bytes arrive (headers checked: 200, chunked). */
class ChunkedBody {
  private head = '';
  private state: 'head' | 'size' | 'data' | 'crlf' = 'head';
  private size = '';
  private left = 0;
  private crlf = 0;
  private readonly decoder = new TextDecoder();

  constructor(private readonly onText: (text: string) => void) {}

  feed(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      if (this.state === 'head') {
        const end = buf.indexOf('\r\n\r\n', i);
        const upto = end === -1 ? buf.length : end + 4;
        this.head += buf.toString('latin1', i, upto);
        i = upto;
        if (this.head.endsWith('\r\n\r\n')) {
          if (!/^HTTP\/1\.1 200 /.test(this.head)) throw new Error(`stream refused: ${this.head.split('\r\n')[0]}`);
          if (!/\r\ntransfer-encoding: chunked\r\n/i.test(this.head)) throw new Error('stream is not chunked');
          this.state = 'size';
        }
      } else if (this.state === 'size') {
        const c = buf[i++]!;
        if (c === 0x0a) {
          this.left = parseInt(this.size.trim(), 16);
          this.size = '';
          if (!Number.isFinite(this.left)) throw new Error('bad chunk size');
          if (this.left === 0) throw new Error('the stream ended');
          this.state = 'data';
        } else if (c !== 0x0d) this.size += String.fromCharCode(c);
      } else if (this.state === 'data') {
        const take = Math.min(this.left, buf.length - i);
        this.onText(this.decoder.decode(buf.subarray(i, i + take), { stream: true }));
        i += take;
        this.left -= take;
        if (this.left === 0) ((this.state = 'crlf'), (this.crlf = 0));
      } else {
        i++;
        if (++this.crlf === 2) this.state = 'size';
      }
    }
  }
}

interface Sub {
  socket: TLSSocket;
  body: ChunkedBody;
  parser: EventSourceParser;
  ready: boolean;
  /** While measuring: [receipt time (ns), chunk] in arrival order; read after the round. */
  got: Array<[bigint, Buffer]>;
  /** Receipt time of the chunk being parsed now. */
  at: bigint;
}

const send = (m: ReaderReply) => process.send!(m);
let measuring = false;
let latencies: number[] = [];
let malformed = 0;
let other = 0;
const subs: Sub[] = [];

function onEvent(sub: Sub, name: string | undefined, data: string): void {
  if (name === 'ready') {
    sub.ready = true;
    if (subs.every((s) => s.ready)) send({ type: 'ready' });
    return;
  }
  if (name !== 'score') return void other++;
  try {
    const event = JSON.parse(data) as { device?: string; modelVersion?: string };
    const stamp = /^bench-(\d+)$/.exec(event.modelVersion ?? '');
    if (event.device !== 'bench-0' || !stamp) return void malformed++;
    latencies.push(Number(sub.at - BigInt(stamp[1]!)) / 1e6);
  } catch {
    malformed++;
  }
}

function open(spec: ReaderOpen): void {
  const request = `GET ${spec.path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n`;
  for (let n = 0; n < spec.count; n++) {
    const socket = connect({ host: '127.0.0.1', port: spec.port, ca: spec.ca, cert: spec.cert, key: spec.key, servername: 'localhost' });
    const parser: EventSourceParser = createParser({ onEvent: (e) => onEvent(sub, e.event, e.data) });
    const sub: Sub = { socket, parser, body: new ChunkedBody((text) => parser.feed(text)), ready: false, got: [], at: 0n };
    subs.push(sub);
    socket.setNoDelay(true);
    socket.once('secureConnect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      if (measuring) sub.got.push([process.hrtime.bigint(), chunk]);
      else {
        sub.at = process.hrtime.bigint();
        sub.body.feed(chunk);
      }
    });
    socket.on('error', (err) => send({ type: 'error', message: `subscriber ${n}: ${err.message}` }));
    socket.on('close', () => {
      if (!exiting) send({ type: 'error', message: `subscriber ${n}: the gateway closed the stream` });
    });
  }
}

/**
 * Reads what arrived since the last call (the first call starts measuring): the receipt time of each event is that
 * of the chunk that completed it.
 */
let cpu = process.cpuUsage();
function round(): void {
  const used = process.cpuUsage(cpu);
  latencies = [];
  malformed = 0;
  other = 0;
  for (const sub of subs) {
    for (const [at, chunk] of sub.got) {
      sub.at = at;
      sub.body.feed(chunk);
    }
    sub.got = [];
  }
  send({ type: 'round', latencies, malformed, other, cpuMs: (used.user + used.system) / 1000 });
  // What this process spent receiving the round (the parsing above is after the fact, not counted).
  cpu = process.cpuUsage();
  measuring = true;
}

let exiting = false;
process.on('message', (m: ReaderRequest) => {
  try {
    if (m.type === 'open') open(m);
    else if (m.type === 'round') round();
    else {
      exiting = true;
      for (const sub of subs) sub.socket.destroy();
      process.disconnect();
    }
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
  }
});
