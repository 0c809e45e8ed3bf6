/** Test plumbing for trust: a real SSE reader over mTLS, and a real node:https service that asks for client certificates. */
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClientRequest } from 'node:http';
import { createParser } from 'eventsource-parser';
import '../helpers.js'; // its child-process environment (no per-process coverage hook)
import type { Gateway } from '../../gateway/index.js';
import { API_PREFIX, SESSION_COOKIE } from '../../protocol/index.js';

type T = { teardown(fn: () => unknown): void };

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: any;
}

export interface SseReader {
  events: SseEvent[];
  comments: string[];
  status: Promise<number>;
  /** The id of the last event that had one. */
  lastId(): string | undefined;
  /** Ends the connection from the client side (what a dropped network looks like to the gateway). */
  kill(): void;
  closed: Promise<void>;
  req: ClientRequest;
  res?: IncomingMessage;
}

/** Opens GET /api/v1/trust/stream with a client certificate (or a session cookie); events are parsed by eventsource-parser. */
export function openStream(
  gw: { httpsPort: number; caPem: string },
  creds: { cert: string; key: string } | { cookie: string },
  lastEventId?: string,
  options: { paused?: boolean; /** Another stream of the API (default /trust/stream). */ path?: string } = {},
): SseReader {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let last: string | undefined = lastEventId;
  let resolveStatus!: (s: number) => void;
  let resolveClosed!: () => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const reader: SseReader = { events, comments, status, closed, lastId: () => last, kill: () => req.destroy(), req: undefined as unknown as ClientRequest };
  const req = request(
    `https://127.0.0.1:${gw.httpsPort}${API_PREFIX}${options.path ?? '/trust/stream'}`,
    {
      ca: gw.caPem,
      servername: 'localhost',
      ...('cookie' in creds ? {} : { cert: creds.cert, key: creds.key }),
      agent: false,
      headers: {
        Accept: 'text/event-stream',
        ...('cookie' in creds ? { Cookie: `${SESSION_COOKIE}=${creds.cookie}` } : {}),
        ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
      },
    },
    (res) => {
      reader.res = res;
      resolveStatus(res.statusCode!);
      const parser = createParser({
        onEvent: (e) => {
          if (e.id !== undefined) last = e.id;
          events.push({ id: e.id, event: e.event ?? 'message', data: JSON.parse(e.data) });
        },
        onComment: (c) => comments.push(c),
      });
      res.setEncoding('utf8');
      if (options.paused) res.pause();
      res.on('data', (chunk: string) => parser.feed(chunk));
      res.on('close', () => resolveClosed());
    },
  );
  req.on('error', () => resolveClosed());
  req.end();
  reader.req = req;
  return reader;
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A node:https service with a server certificate from the gateway's CA that asks clients for a certificate. */
export async function mtlsService(t: T, gw: Gateway & { caPem: string }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const issued = await gw.ca.issueServer(['localhost']);
  const server = createServer(
    {
      key: issued.keyPem,
      cert: issued.pem + gw.ca.material.intermediate.toString(),
      ca: gw.caPem,
      requestCert: true,
      // The service answers refusals itself (403 with the reason), so the handshake lets every certificate through.
      rejectUnauthorized: false,
    },
    handler,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { server, port: (server.address() as AddressInfo).port };
}

/** One request to the service with a client certificate. */
export function callService(port: number, caPem: string, creds: { cert: string; key: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}/`, { ca: caPem, servername: 'localhost', cert: creds.cert, key: creds.key, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
