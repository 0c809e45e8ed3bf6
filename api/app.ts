/**
 * The HTTPS API as a Fastify 5 app under /api/v1, on the gateway's HTTPS listener; its router also takes that
 * listener's other endpoints (EST, /crl, /ocsp, /metrics: `devices`), which answer for themselves. Every API route
 * comes from the route table (api/routes.ts) and authenticates first (api/auth.ts); the only exception is the login
 * link, whose secret is the credential. Refusals (401, 403, failed logins) are rate-limited per source and per identity and logged in
 * summary; cookies, links and tokens are never logged (Fastify's own request logging is off).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Server } from 'node:https';
import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type HTTPMethods } from 'fastify';
import { z } from 'zod';
import { LogThrottle } from '../lib/log-throttle.js';
import { sourceKey } from '../lib/rate-limit.js';
import { API_MAX_BODY_BYTES, API_PREFIX, SESSION_COOKIE } from '../protocol/index.js';
import { authorize, DEFAULT_REFUSAL_LIMITS, Refusal, RefusalLimiter, resolveCaller, type Caller, type RefusalLimits } from './auth.js';
import { CredentialWatch, DEFAULT_RECHECK_MS } from './credential-watch.js';
import { FleetRefusal } from './fleet-port.js';
import { ROUTES, type ApiDeps, type RouteSpec } from './routes.js';
import { trustStreams } from './routes-trust.js';
import { fleetEventStreams } from './routes-events.js';

export interface ApiLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ApiOptions extends ApiDeps {
  /** Whether a certificate serial (normalised hex) is revoked, from the gateway's in-memory view. */
  isRevoked(serial: string): boolean;
  log: ApiLogger;
  refusalLimits?: Partial<RefusalLimits>;
  /** Clock in ms for the refusal limiter (tests). */
  now?: () => number;
  /** Makes the HTTPS server (TLS options, limits) around Fastify's request handler, which answers every request. */
  serverFactory(handler: NodeHandler): Server;
  /** The listener's endpoints that are not the API (EST, /crl, /ocsp, /metrics), routed here but answered by their own handlers. */
  devices?: DeviceEndpoints;
  /** Where a browser goes once a login link signed it in (default: /api/v1/whoami; the gateway: its dashboard). */
  afterSignIn?: string;
  /** How often open event streams have their credential rechecked (ms; api/credential-watch.ts). */
  credentialRecheckMs?: number;
}

/** A plain node handler that reads the request (body included) and writes the whole answer itself. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Endpoints for devices and relying parties on the API's listener. Fastify routes them, and then hands the raw
 * request over before anything of the API runs (authentication, refusal limits, cookie and body parsing, its
 * headers and its JSON errors), so they answer exactly as their handlers always have.
 */
export interface DeviceEndpoints {
  /** Exact paths, for all methods unless `methods` says which; the handler answers any other method itself. */
  routes: { url: string; methods?: HTTPMethods[]; handler: NodeHandler }[];
  /**
   * Requests outside the API that no route matches (other paths and methods, URLs the router cannot decode): the
   * handler that always answered them (EST's plain-text 404, OCSP's malformedRequest).
   */
  fallback: NodeHandler;
  /** Paths outside /api/ that belong to the app all the same (the dashboard's): unmatched, they get the API's JSON 404. */
  ownPath?(url: string | undefined): boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
    refusedAs: string | undefined;
    /** Answered by a device endpoint (DeviceEndpoints), not by the API. */
    forDevice: boolean;
  }
  interface FastifyContextConfig {
    spec?: RouteSpec;
    public?: boolean;
    /** A device endpoint's own handler (DeviceEndpoints.routes). */
    device?: NodeHandler;
  }
}

/** Paths the API answers (all others are EST, CRL, metrics, OCSP, or the dashboard's). */
export function isApiPath(url: string | undefined): boolean {
  const path = (url ?? '/').split('?')[0]!;
  return path === '/api' || path.startsWith('/api/');
}

const EMPTY = z.strictObject({});
const toFastifyPath = (path: string) => API_PREFIX + path.replace(/\{(\w+)\}/g, ':$1');

/** Fastify's own client errors (body parsing, limits) with a reason a person can act on. */
const CLIENT_ERRORS: Record<string, [number, (e: Error) => string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, (e) => `malformed JSON body: ${e.message}`],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, () => 'empty body with Content-Type: application/json: send {} or no Content-Type'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, () => `request body too large (limit ${API_MAX_BODY_BYTES} bytes)`],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, () => 'unsupported Content-Type: the API reads application/json only'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, () => 'Content-Length does not match the body'],
  FST_ERR_BAD_URL: [400, () => 'malformed URL'],
};

export async function createApi(options: ApiOptions): Promise<FastifyInstance<Server>> {
  const deps: ApiDeps = { fleet: options.fleet, sessions: options.sessions, publicUrl: options.publicUrl, trust: options.trust, ...(options.trustStream ? { trustStream: options.trustStream } : {}) };
  if (options.events) deps.events = options.events;
  if (options.eventStream) deps.eventStream = options.eventStream;
  deps.isRevoked = options.isRevoked;
  if (options.credentials) deps.credentials = options.credentials;
  if (options.audit) deps.audit = options.audit;
  if (options.reports) deps.reports = options.reports;
  const limiter = new RefusalLimiter({ ...DEFAULT_REFUSAL_LIMITS, ...options.refusalLimits }, options.now);
  // Event streams end with the credential that opened them; revocations the trust feed reports end them at once.
  const watch = new CredentialWatch({
    sessions: deps.sessions,
    isRevoked: options.isRevoked,
    recheckMs: options.credentialRecheckMs ?? DEFAULT_RECHECK_MS,
    onRevocations: (listener) =>
      deps.trust.onEvent((e) => {
        if (e.kind === 'feed') listener(new Set(e.events.flatMap((f) => (f.name === 'revoked' ? [f.data.serial] : []))));
      }),
  });
  const refusals = new LogThrottle(options.log);
  const devices = options.devices;
  /** The handler of an unmatched (or undecodable) URL when the device endpoints answer it rather than the API. */
  const deviceFallback = (url: string | undefined): NodeHandler | undefined =>
    devices && !isApiPath(url) && !devices.ownPath?.(url) ? devices.fallback : undefined;
  const app = Fastify({
    serverFactory: (handler) => options.serverFactory(handler as NodeHandler),
    // A URL the router cannot decode (bad percent-encoding): outside the API its handler decides (OCSP answers a
    // malformedRequest in the body); in the API, the API's 400.
    frameworkErrors: (err, request, frameworkReply) => {
      const reply = frameworkReply as FastifyReply;
      const fallback = err.code === 'FST_ERR_BAD_URL' ? deviceFallback(request.raw.url) : undefined;
      if (fallback) {
        reply.hijack();
        return fallback(request.raw, reply.raw);
      }
      const message = err.code === 'FST_ERR_BAD_URL' ? 'malformed URL' : err.message;
      void reply
        .code(400)
        .header('Cache-Control', 'no-store')
        .header('X-Content-Type-Options', 'nosniff')
        .type('application/json; charset=utf-8')
        .send({ statusCode: 400, error: 'Bad Request', message });
    },
    logger: false,
    bodyLimit: API_MAX_BODY_BYTES,
    routerOptions: { maxParamLength: 200 },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    forceCloseConnections: true,
  }) as unknown as FastifyInstance<Server>;
  app.decorateRequest('caller', null);
  app.decorateRequest('refusedAs', undefined);
  app.decorateRequest('forDevice', false);
  app.removeContentTypeParser('text/plain');

  // First of all hooks: a device endpoint's request (or an unmatched one outside the API) goes, unread, to its own
  // handler; Fastify runs nothing more for it (no other onRequest hook, no body parsing, no onSend).
  app.addHook('onRequest', (request, reply, done) => {
    const handler = request.routeOptions.config.device ?? (request.is404 ? deviceFallback(request.raw.url) : undefined);
    if (handler) {
      request.forDevice = true;
      reply.hijack();
      handler(request.raw, reply.raw);
    }
    done();
  });
  await app.register(fastifyCookie);

  // zod validates (and documents: api/openapi.ts); a failure is a 400 naming each bad field.
  app.setValidatorCompiler(({ schema }) => (data: unknown) => {
    const result = (schema as z.ZodType).safeParse(data === null ? undefined : data);
    return result.success ? { value: result.data } : { error: new Error(z.prettifyError(result.error).replace(/\n/g, '; ')) };
  });

  app.addHook('onRequest', async (request: FastifyRequest) => {
    const config = request.routeOptions.config;
    if (request.is404 || request.forDevice) return; // unmatched paths: 404 for everyone, whoever asks
    const wait = limiter.blocked(request.ip);
    if (wait !== undefined) throw new Refusal(429, `too many refused requests from this address; retry in ${wait} s`, undefined, wait);
    if (config.public) return;
    try {
      const caller = await resolveCaller(request.raw, request.cookies[SESSION_COOKIE], deps.sessions, options.isRevoked);
      const waitId = limiter.blocked(request.ip, caller.identity);
      if (waitId !== undefined) throw new Refusal(429, `too many refused requests for ${caller.identity}; retry in ${waitId} s`, undefined, waitId);
      authorize(caller, config.spec!.access, request.method, request.headers['x-csrf-token'], deps.sessions);
      request.caller = caller;
    } catch (err) {
      if (err instanceof Refusal) request.refusedAs = err.identity;
      throw err;
    }
  });

  app.addHook('onSend', async (_request, reply) => {
    reply.header('Cache-Control', 'no-store');
    reply.header('X-Content-Type-Options', 'nosniff');
  });

  app.addHook('onResponse', async (request, reply) => {
    // Device endpoints' refusals (EST's 401s) are theirs: they have their own limits.
    if (!request.forDevice && (reply.statusCode === 401 || reply.statusCode === 403)) limiter.record(request.ip, request.refusedAs);
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no such API route: ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}` });
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number; validationContext?: string }, request, reply: FastifyReply) => {
    let status = 500;
    let message = 'internal error';
    const known = err.code ? CLIENT_ERRORS[err.code] : undefined;
    if (err instanceof Refusal) {
      status = err.status;
      message = err.message;
      if (err.retryAfterSeconds) void reply.header('Retry-After', String(err.retryAfterSeconds));
      const source = sourceKey(request.ip);
      refusals.warn(`${status} ${source}`, { status, reason: message, remote: source, ...(err.identity ? { identity: err.identity } : {}), path: request.routeOptions.url ?? '(other)' }, 'API request refused');
    } else if (err instanceof FleetRefusal) {
      status = err.status;
      message = err.message;
    } else if (err.code === 'FST_ERR_VALIDATION') {
      status = 400;
      message = `invalid ${err.validationContext ?? 'request'}: ${err.message}`;
    } else if (known) {
      [status] = known;
      message = known[1](err);
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      message = err.message;
    } else {
      options.log.error({ err: err.message, path: request.routeOptions.url }, 'API request failed');
    }
    if (status === 413 || (err instanceof Refusal && err.closeConnection)) void reply.header('Connection', 'close');
    void reply.code(status).type('application/json; charset=utf-8').send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
  });

  for (const spec of ROUTES) {
    app.route({
      method: spec.method,
      url: toFastifyPath(spec.path),
      schema: { params: spec.params ?? EMPTY, querystring: spec.query ?? EMPTY, ...(spec.body ? { body: spec.body } : {}) },
      config: { spec },
      handler: (request, reply) => {
        // Held from before it opens, so a credential that ends while the stream is being set up ends it too.
        if (spec.events) watch.hold(request.caller!, reply.raw);
        return spec.handler({ caller: request.caller!, params: request.params, query: request.query, body: request.body, reply, deps });
      },
    });
  }

  for (const route of devices?.routes ?? []) {
    app.route({
      method: route.methods ?? (app.supportedMethods as HTTPMethods[]),
      url: route.url,
      exposeHeadRoute: false,
      config: { public: true, device: route.handler },
      handler: () => {
        throw new Error('device endpoints are answered in onRequest');
      },
    });
  }

  // The login link: its one-time secret is the credential. Opening it (GET) only shows a button; the POST that
  // button makes redeems it. So link previews and mail scanners that fetch every link do not burn it, and the
  // cookie is set on a same-site request (a SameSite=Strict cookie set during a cross-site redirect is not sent).
  const LINK = /^[A-Za-z0-9_-]{20,100}$/;
  app.route({
    method: 'GET',
    url: `${API_PREFIX}/login/:secret`,
    config: { public: true },
    handler: async (request, reply) => {
      const { secret } = request.params as { secret: string };
      if (!LINK.test(secret)) throw new Refusal(401, 'this login link is unknown, used or expired: ask for a new one (wott operator login)');
      void reply
        .header('Content-Security-Policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
        .header('Referrer-Policy', 'no-referrer')
        .header('X-Frame-Options', 'DENY')
        .type('text/html; charset=utf-8');
      return `<!doctype html><meta charset="utf-8"><title>wott sign-in</title><form method="post" action="${API_PREFIX}/login/${secret}"><p>This one-time link signs this browser in to wott.</p><button type="submit">Sign in</button></form>\n`;
    },
  });
  await app.register(async (login) => {
    // The button's form posts an empty urlencoded body; nothing in it is read.
    login.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 }, (_req, _body, done) => done(null, undefined));
    login.route({
      method: 'POST',
      url: `${API_PREFIX}/login/:secret`,
      config: { public: true },
      handler: async (request, reply) => {
        const { secret } = request.params as { secret: string };
        const source = sourceKey(request.ip);
        // Login CSRF: another site must not sign this browser in to a session of its choosing.
        const site = request.headers['sec-fetch-site'];
        if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new Refusal(403, 'sign in from the link itself, not from another site');
        const result = LINK.test(secret) ? await deps.sessions.redeem(secret, source) : ({ ok: false, reason: 'unknown' } as const);
        if (!result.ok) {
          await deps.fleet.record({ actor: `source:${source}`, action: 'session.login', outcome: 'refused', detail: `login link ${result.reason}` });
          throw new Refusal(401, 'this login link is unknown, used or expired: ask for a new one (wott operator login)');
        }
        const { session } = result;
        await deps.fleet.record({ actor: `session:${session.role}:${session.name}`, action: 'session.login', target: session.id, outcome: 'ok', detail: `from ${source}` });
        const maxAge = Math.max(1, Math.floor((Date.parse(session.expiresAt) - Date.now()) / 1000));
        void reply.setCookie(SESSION_COOKIE, result.cookie, { path: '/', httpOnly: true, secure: true, sameSite: 'strict', maxAge });
        void reply.header('Referrer-Policy', 'no-referrer');
        return reply.redirect(options.afterSignIn ?? `${API_PREFIX}/whoami`, 303);
      },
    });
  });

  app.addHook('onClose', async () => refusals.close());
  app.addHook('preClose', async () => {
    // Open streams would hold the close forever.
    watch.close();
    trustStreams(deps).close();
  });
  app.addHook('preClose', async () => fleetEventStreams(deps)?.close());
  return app;
}
