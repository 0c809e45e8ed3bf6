/**
 * wott.yaml: parsed with `yaml` (keeping positions) and validated with zod, so every error names the field and
 * the line it is on. Unknown fields are errors: a typo must not silently fall back to a default.
 */
import { readFileSync, existsSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, visit } from 'yaml';
import { z } from 'zod';
import { policyRuleSchema } from '../policy/index.js';
import { durationSchema, loadModel, ModelError, type ScoreModel } from '../scoring/model.js';
import { mosquittoSectionSchema } from '../mosquitto-compat/sync.js';
import type { BrokerLimits, DeepPartial } from '../broker/index.js';
import type { HttpsLimits } from '../gateway/index.js';
import type { EventStreamLimits, TrustStreamLimits } from '../api/index.js';
import { DEFAULT_ENROLLMENT_LIMITS } from '../ca/est.js';

const duration = durationSchema;

const port = z.number().int().min(0).max(65535);
const count = z.number().int().min(1).max(10_000_000);
const bytes = z.number().int().min(1).max(2 ** 40);
/** An IP address to bind (names would depend on resolution at start). */
const address = z.union([z.ipv4(), z.ipv6()]);
/** `max` attempts per `window`; over it, refused for `ban`. */
const rateRule = z.object({ max: count, window: duration, ban: duration }).partial().strict();

export const configSchema = z
  .object({
    /** The data folder (CA, inventory, scores); relative to the config file's folder. --data and WOTT_DATA win. */
    data: z.string().min(1).max(4096).optional(),
    ca: z
      .object({
        certLifetime: duration.default(7 * 86_400_000),
        crlValidity: duration.default(86_400_000),
        /** OCSP nextUpdate: how long a cached or stapled answer may outlive a revocation. */
        ocspValidity: duration.default(3_600_000),
      })
      .strict()
      .prefault({}),
    /**
     * Where the fleet's state lives: absent, the embedded SQLite files in the data folder; `postgres: URL`, one
     * PostgreSQL database shared by every gateway of a cluster (its password may come from PGPASSWORD instead).
     */
    store: z
      .object({
        postgres: z.url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// URL' }).optional(),
      })
      .strict()
      .prefault({}),
    enrollment: z
      .object({
        claim: z.boolean().default(false),
        tokenTtl: duration.default(86_400_000),
        /** simpleenroll without credentials (claim mode, TPM-only), per source address (IPv6: per /64). */
        rateLimit: z
          .object({
            perMinute: z.number().positive().max(1e6).default(DEFAULT_ENROLLMENT_LIMITS.rateLimit.perMinute),
            burst: z.number().int().min(1).max(1e6).default(DEFAULT_ENROLLMENT_LIMITS.rateLimit.burst),
            maxSources: z.number().int().min(1).max(1e7).default(DEFAULT_ENROLLMENT_LIMITS.rateLimit.maxSources),
          })
          .strict()
          .prefault({}),
        /** Claim mode refuses new unclaimed devices while this many wait to be claimed. */
        maxUnclaimed: z.number().int().min(0).max(1e7).default(DEFAULT_ENROLLMENT_LIMITS.maxUnclaimed),
        /** Unclaimed devices nobody claims within this time are revoked. */
        unclaimedTtl: duration.default(DEFAULT_ENROLLMENT_LIMITS.unclaimedTtlMs),
        /** Enrollments and renewals worked on at once; past it EST answers 503 with Retry-After. */
        maxInProgress: z.number().int().min(1).max(1e5).default(DEFAULT_ENROLLMENT_LIMITS.maxInProgress),
        /** The Retry-After of that 503, in seconds. */
        busyRetryAfter: z.number().int().min(1).max(3600).default(DEFAULT_ENROLLMENT_LIMITS.busyRetryAfterSeconds),
      })
      .strict()
      .prefault({}),
    gateway: z
      .object({
        httpsPort: port.default(8443),
        mqttPort: port.default(8883),
        /** Extra host names / addresses for the server certificate. */
        hosts: z.array(z.string().min(1).max(253)).max(32).default([]),
        /** Base URL devices use to reach the HTTPS port; the CRL distribution point is {publicUrl}/crl. */
        publicUrl: z.url({ protocol: /^https$/ }).optional(),
        /** Address the HTTPS and MQTT listeners bind to (each can be set on its own below). */
        bind: address.default('0.0.0.0'),
        httpsBind: address.optional(),
        mqttBind: address.optional(),
        /** Prometheus metrics over plain HTTP; false turns the listener off. Loopback unless bound elsewhere. */
        metricsPort: z.union([port, z.literal(false)]).default(9464),
        metricsBind: address.default('127.0.0.1'),
        httpsLimits: z
          .object({
            maxConnections: count.optional(),
            maxConnectionsPerSource: count.optional(),
            handshakeTimeout: duration.optional(),
            headersTimeout: duration.optional(),
            requestTimeout: duration.optional(),
            connectRate: rateRule.optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** The HTTPS API (/api/v1): browser sessions and the limit on refused calls. */
    api: z
      .object({
        sessionTtl: duration.default(12 * 3_600_000),
        /** Refused calls (401, 403, failed logins) per source address and per identity; then 429 for a while. */
        refusals: z
          .object({
            perMinute: z.number().positive().max(1e6).default(10),
            burst: z.number().int().min(1).max(1e6).default(20),
          })
          .strict()
          .prefault({}),
        /** GET /api/v1/trust/stream: open streams at most, heartbeat interval, unread bytes before a slow reader is dropped. */
        trustStream: z
          .object({
            maxSubscribers: z.number().int().min(1).max(100_000).default(2_000),
            heartbeat: duration.default(15_000),
            maxBufferedBytes: z.number().int().min(4096).max(64 * 1024 * 1024).default(1024 * 1024),
          })
          .strict()
          .prefault({}),
        /** GET /api/v1/events/stream (operators' fleet events): the same three limits, its own values. */
        eventStream: z
          .object({
            maxSubscribers: z.number().int().min(1).max(100_000).default(500),
            heartbeat: duration.default(15_000),
            maxBufferedBytes: z.number().int().min(4096).max(64 * 1024 * 1024).default(1024 * 1024),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** Per-topic minimum Trust Scores; unmatched topics are denied. */
    policies: z.array(policyRuleSchema).max(100_000).default([]),
    scoring: z
      .object({
        /** The broker's score for a device scoring has not scored yet. */
        initialScore: z.number().min(0).max(1).default(0.5),
        /** Run scoring inside `wott gateway` (default); false when `wott scoring` runs elsewhere. */
        enabled: z.boolean().default(true),
        /** Overrides of scoring/model.yaml, field by field. */
        model: z
          .unknown()
          .optional()
          .transform((value, ctx): ScoreModel => {
            try {
              return loadModel(value);
            } catch (err) {
              const e = err as ModelError;
              ctx.addIssue({ code: 'custom', message: e.message.replace(/^[^:]*: /, ''), path: e.path ?? [] });
              return z.NEVER;
            }
          }),
        republishInterval: duration.default(300_000),
        /** Embedded score history, kept with or without InfluxDB. */
        historyRetention: duration.default(30 * 86_400_000),
        influx: z
          .object({
            url: z.url({ protocol: /^https?$/ }),
            api: z.enum(['v1', 'v2']).default('v1'),
            database: z.string().min(1).max(128).default('wott'),
            retentionPolicy: z.string().min(1).max(128).optional(),
            org: z.string().min(1).max(128).optional(),
            bucket: z.string().min(1).max(128).optional(),
            /** Prefer the WOTT_INFLUX_TOKEN environment variable over writing a token here. */
            token: z.string().min(1).max(4096).optional(),
            username: z.string().min(1).max(128).optional(),
            password: z.string().max(4096).optional(),
            batchSize: z.number().int().min(1).max(100_000).default(5000),
            flushInterval: duration.default(1000),
            spoolMaxBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
          })
          .strict()
          .refine((i) => i.api === 'v1' || (i.org && i.bucket), { message: 'api v2 needs org and bucket' })
          .optional(),
      })
      .strict()
      .prefault({}),
    /** The fleet audit the gateway runs on its own (docs/audit.md): daily by default, the first run soon after the start. */
    audit: z
      .object({
        schedule: z.boolean().default(true),
        interval: duration.default(86_400_000),
        firstRun: duration.default(300_000),
      })
      .strict()
      .prefault({}),
    /** Several gateways acting as one (docs/cluster.md): Aedes on Redis, scoring on one node at a time. */
    cluster: z
      .object({
        redis: z.url({ protocol: /^rediss?$/ }),
        /** This node's name (default: host name and process id). */
        node: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
        /** Scoring leadership lease: a dead leader is replaced within about this long. */
        lease: duration.default(3_000),
        /** About how many messages the cluster bus (a Redis stream) keeps: bounds Redis' memory (docs/cluster.md). */
        busMaxLength: count.default(100_000),
        /** Devices' QoS 0 messages handed to Redis and not answered, past which their publishers wait (bounds memory). */
        qos0InFlight: count.default(10_000),
      })
      .strict()
      .optional(),
    /** Run the Mosquitto Dynamic Security sync inside `wott gateway` (see mosquitto-compat/README.md). */
    mosquitto: mosquittoSectionSchema.optional(),
    broker: z
      .object({
        onDowngrade: z.enum(['filter', 'disconnect']).default('filter'),
        eventInterval: duration.default(10_000),
        /** What one MQTT client may consume; docs/broker.md "Limits" lists the defaults (broker/limits.ts). */
        limits: z
          .object({
            maxPacketSize: z.number().int().min(1024).max(268_435_455).optional(),
            maxConnections: count.optional(),
            maxConnectionsPerSource: count.optional(),
            maxConnectionsPerIdentity: count.optional(),
            maxSubscriptionsPerConnection: count.optional(),
            maxBufferedBytesPerConnection: bytes.optional(),
            drainTimeout: duration.optional(),
            maxQueuedMessagesPerSession: count.optional(),
            handshakeTimeout: duration.optional(),
            connectTimeout: duration.optional(),
            sourceConnectRate: rateRule.optional(),
            identityConnectRate: rateRule.optional(),
            retained: z
              .object({ perDevice: count, bytesPerDevice: bytes, total: count, totalBytes: bytes })
              .partial()
              .strict()
              .optional(),
            restrictedTelemetry: z.object({ max: count, window: duration }).partial().strict().optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type WottConfig = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses and validates config text; `source` names the file in messages. */
export function parseConfig(text: string, source = 'wott.yaml'): WottConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const err = doc.errors[0]!;
    const { line } = lineCounter.linePos(err.pos[0]);
    throw new ConfigError(`${source}:${line}: YAML syntax error: ${err.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    // toJS() resolves aliases: an alias without its anchor, or too many (an alias bomb), throws here.
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    let line = 1;
    visit(doc, {
      Alias(_, node) {
        if (node.range && node.resolve(doc) === undefined) {
          line = lineCounter.linePos(node.range[0]).line;
          return visit.BREAK;
        }
      },
    });
    throw new ConfigError(`${source}:${line}: YAML error: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = configSchema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') path = [...path, String(issue.keys[0])];
  // Point at the deepest node that exists in the document.
  let line: number | undefined;
  for (let depth = path.length; depth >= 0 && line === undefined; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) line = lineCounter.linePos(node.range[0]).line;
  }
  if (issue.code === 'unrecognized_keys') {
    const pair = findKeyLine(doc, path, lineCounter);
    if (pair) line = pair;
  }
  // A key that is blank or holds dots, colons or control characters is quoted, so the message stays readable.
  const field = path.map((p) => (/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p))).join('.') || '(root)';
  const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  throw new ConfigError(`${source}:${line ?? 1}: ${field}: ${message}`);
}

function findKeyLine(doc: ReturnType<typeof parseDocument>, path: string[], counter: LineCounter): number | undefined {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  const items = (parent as { items?: Array<{ key?: { value?: unknown; range?: [number, number, number] } }> })?.items;
  const key = items?.find((item) => item.key?.value === path[path.length - 1])?.key;
  return key?.range ? counter.linePos(key.range[0]).line : undefined;
}

/** Loads `path`; when `path` is undefined, ./wott.yaml if present, else the defaults. */
export function loadConfig(path?: string): { config: WottConfig; source?: string } {
  const file = path ?? (existsSync('wott.yaml') ? 'wott.yaml' : undefined);
  if (!file) return { config: parseConfig('') };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return { config: parseConfig(text, file), source: file };
}

type RateConfig = z.infer<typeof rateRule>;
const rate = (r: RateConfig | undefined) =>
  r && { ...(r.max !== undefined ? { max: r.max } : {}), ...(r.window !== undefined ? { windowMs: r.window } : {}), ...(r.ban !== undefined ? { banMs: r.ban } : {}) };
/** Drops undefined fields, so that what the file does not set keeps its default. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** broker.limits in the shape of BrokerLimits (milliseconds, bytes). */
export function brokerLimitsFromConfig(config: WottConfig): DeepPartial<BrokerLimits> {
  const l = config.broker.limits;
  const t = l.restrictedTelemetry;
  return defined({
    maxPacketBytes: l.maxPacketSize,
    maxConnections: l.maxConnections,
    maxConnectionsPerSource: l.maxConnectionsPerSource,
    maxConnectionsPerIdentity: l.maxConnectionsPerIdentity,
    maxSubscriptionsPerConnection: l.maxSubscriptionsPerConnection,
    maxBufferedBytesPerConnection: l.maxBufferedBytesPerConnection,
    drainTimeoutMs: l.drainTimeout,
    maxQueuedMessagesPerSession: l.maxQueuedMessagesPerSession,
    handshakeTimeoutMs: l.handshakeTimeout,
    connectTimeoutMs: l.connectTimeout,
    sourceConnectRate: rate(l.sourceConnectRate),
    identityConnectRate: rate(l.identityConnectRate),
    retained: l.retained && defined(l.retained),
    restrictedTelemetry: t && defined({ max: t.max, windowMs: t.window }),
  }) as DeepPartial<BrokerLimits>;
}

/** api.trustStream and api.eventStream in the shape of the API's stream limits (durations in ms). */
export function streamLimitsFromConfig(config: WottConfig): { trustStream: TrustStreamLimits; eventStream: EventStreamLimits } {
  const limits = (s: WottConfig['api']['trustStream']) => ({ maxSubscribers: s.maxSubscribers, heartbeatMs: s.heartbeat, maxBufferedBytes: s.maxBufferedBytes });
  return { trustStream: limits(config.api.trustStream), eventStream: limits(config.api.eventStream) };
}

/** gateway.httpsLimits in the shape of HttpsLimits. */
export function httpsLimitsFromConfig(config: WottConfig): Partial<HttpsLimits> {
  const l = config.gateway.httpsLimits;
  return defined({
    maxConnections: l.maxConnections,
    maxConnectionsPerSource: l.maxConnectionsPerSource,
    handshakeTimeoutMs: l.handshakeTimeout,
    headersTimeoutMs: l.headersTimeout,
    requestTimeoutMs: l.requestTimeout,
    connectRate: rate(l.connectRate),
  }) as Partial<HttpsLimits>;
}
