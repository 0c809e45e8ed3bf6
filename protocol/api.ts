/**
 * The HTTPS API's contract (issue 13): paths, header and cookie names, and every request and response shape as zod
 * schemas. The gateway validates with these and the OpenAPI document (api/openapi.json) is generated from them, so
 * the two cannot disagree. Request objects are strict: an unknown field is a 400, not silently ignored.
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';
import { DEVICE_STATES } from './messages.js';
import { OPERATOR_ROLES } from './operator-id.js';
import { TAG_PATTERN, TAG_RULE } from './tags.js';
import { behaviourEventInfoSchema, deviceActionSchema, deviceLiveSchema, factorInfoSchema, findingInfoSchema, fleetInsightSummarySchema, historyPointSchema, ruleRefSchema, sessionFactSchema } from './fleet-api.js';

export const API_PREFIX = '/api/v1';
/** Largest request body the API reads; more is a 413 before any parsing. */
export const API_MAX_BODY_BYTES = 64 * 1024;
/** Browser sessions: the cookie (the __Host- prefix makes browsers insist on Secure, Path=/ and no Domain). */
export const SESSION_COOKIE = '__Host-wott_session';
/** State-changing requests from a browser session carry this header with the token `GET /whoami` returned. */
export const CSRF_HEADER = 'x-csrf-token';
export const LOGIN_LINK_TTL_MS = 10 * 60_000;
export const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

/** The CRL reasons a revocation may give (the CA's list; test/api checks they agree). */
export const API_REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn'] as const;

const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'a device id: 1-63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit');
/** A tag (protocol/tags.ts has the one rule). */
export const tagSchema = z.string().regex(TAG_PATTERN, `a tag: ${TAG_RULE}`);
const isoTime = z.string().describe('ISO 8601 time');

export const deviceParamsSchema = z.strictObject({ id: deviceIdSchema });
export const sessionParamsSchema = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'a session id') });

export const DEVICE_SORT_KEYS = ['id', 'state', 'createdAt', 'updatedAt', 'certificateExpiry', 'score', 'lastReport'] as const;
const scoreBound = z.coerce.number().min(0).max(1);
export const deviceListQuerySchema = z.strictObject({
  state: z.enum(DEVICE_STATES).optional(),
  tag: tagSchema.optional(),
  q: z.string().max(100).regex(/^[\x20-\x7e]*$/, 'printable ASCII').optional().describe('free text: part of the device id or of a tag'),
  minScore: scoreBound.optional().describe('effective score at least this'),
  maxScore: scoreBound.optional().describe('effective score at most this'),
  below: ruleRefSchema.optional(),
  sort: z.enum(DEVICE_SORT_KEYS).default('id'),
  order: z.enum(['asc', 'desc']).default('asc'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(512).regex(/^[A-Za-z0-9_-]+$/, 'a cursor from nextCursor').optional(),
  format: z.enum(['json', 'csv']).default('json'),
});
export type DeviceListQuery = z.output<typeof deviceListQuerySchema>;

export const certificateInfoSchema = z.strictObject({
  serial: z.string(),
  status: z.enum(['active', 'superseded', 'revoked']),
  notBefore: isoTime,
  notAfter: isoTime,
  issuedAt: isoTime,
  fingerprint: z.string().describe('SHA-256 of the DER certificate, hex'),
  replacedBy: z.string().nullable(),
});
export type CertificateInfo = z.infer<typeof certificateInfoSchema>;

export const deviceSummarySchema = z.strictObject({
  id: z.string(),
  state: z.enum(DEVICE_STATES),
  tags: z.array(z.string()),
  createdAt: isoTime,
  updatedAt: isoTime,
  certificateExpiry: isoTime.nullable().describe('notAfter of the newest active certificate'),
});
export type DeviceSummary = z.infer<typeof deviceSummarySchema>;

/** A device in the list: its inventory facts and what the broker and scoring know of it now. */
export const deviceListItemSchema = deviceSummarySchema.extend(deviceLiveSchema.shape);
export type DeviceListItem = z.infer<typeof deviceListItemSchema>;

export const devicePageSchema = z.strictObject({
  items: z.array(deviceListItemSchema),
  nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last page'),
});
export type DevicePage = z.infer<typeof devicePageSchema>;

export const auditEntrySchema = z.strictObject({
  seq: z.number().int(),
  time: isoTime,
  actor: z.string().describe('cert:{role}:{name}, session:{role}:{name}, local:{os user}'),
  action: z.string(),
  device: z.string().nullable(),
  target: z.string().nullable(),
  outcome: z.enum(['ok', 'refused']),
  detail: z.string().nullable(),
});
export type AuditEntryInfo = z.infer<typeof auditEntrySchema>;

export const deviceDetailSchema = deviceListItemSchema.extend({
  certificates: z.array(certificateInfoSchema),
  audit: z.array(auditEntrySchema).describe('the newest 50 audit entries about this device'),
  scoredAt: isoTime.nullable().describe('time of the latest score message (null: none seen yet)'),
  modelVersion: z.string().nullable(),
  factors: z.array(factorInfoSchema).describe('every factor of the latest score, costliest first'),
  history: z.array(historyPointSchema).describe('stored score history, oldest first (at most 500 points)'),
  sessions: z.array(sessionFactSchema),
  events: z.array(behaviourEventInfoSchema).describe('recent behaviour events the broker observed, newest first'),
  findings: z.array(findingInfoSchema),
  actions: z.array(deviceActionSchema).describe('recommended actions, costliest first'),
});
export type DeviceDetail = z.infer<typeof deviceDetailSchema>;

export const noBodySchema = z.strictObject({}).optional();
export const revokeBodySchema = z.strictObject({ reason: z.enum(API_REVOCATION_REASONS) });
export const revokeResultSchema = z.strictObject({ device: deviceSummarySchema, revoked: z.array(z.string()).describe('serials revoked now') });
export const tagsBodySchema = z.strictObject({ tags: z.array(tagSchema).max(32).refine((t) => new Set(t).size === t.length, 'tags must be distinct') });

/** Adds and removes tags, keeping the device's others (one transaction: no lost update between two operators). */
export const tagChangeBodySchema = z
  .strictObject({ add: z.array(tagSchema).max(32).optional(), remove: z.array(tagSchema).max(32).optional() })
  .refine((b) => (b.add?.length ?? 0) + (b.remove?.length ?? 0) > 0, 'give tags to add or remove');
export type TagChangeBody = z.infer<typeof tagChangeBodySchema>;

export const tokenBodySchema = z.strictObject({
  device: deviceIdSchema,
  ttlSeconds: z.number().int().min(60).max(30 * 86_400).optional().describe('default: the enrollment.tokenTtl setting'),
});
export const tokenResultSchema = z.strictObject({
  device: z.string(),
  token: z.string().describe('shown once; only its hash is stored'),
  expiresAt: isoTime,
  server: z.string().describe('the EST base URL'),
  rootFingerprint: z.string().describe('SHA-256 of the root CA certificate, AB:CD:… (what the device pins)'),
  agentCommand: z.string(),
  curlCommands: z.string().describe('the same enrollment with curl and openssl only'),
});
export type TokenResult = z.infer<typeof tokenResultSchema>;

export const auditQuerySchema = z.strictObject({
  device: deviceIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(20).regex(/^[0-9]+$/, 'a cursor from nextCursor').optional().describe('newest first: entries before this one'),
  format: z.enum(['json', 'csv']).default('json'),
});
export type AuditQuery = z.output<typeof auditQuerySchema>;
export const auditPageSchema = z.strictObject({ items: z.array(auditEntrySchema), nextCursor: z.string().nullable() });
export type AuditPage = z.infer<typeof auditPageSchema>;

export const fleetSummarySchema = z.strictObject({
  devices: z.strictObject({ total: z.number().int(), byState: z.record(z.enum(DEVICE_STATES), z.number().int()) }),
  certificatesExpiringWithin48h: z.number().int(),
  ...fleetInsightSummarySchema.shape,
});
export type FleetSummary = z.infer<typeof fleetSummarySchema>;

export const sessionInfoSchema = z.strictObject({
  id: z.string(),
  role: z.enum(OPERATOR_ROLES),
  name: z.string(),
  createdAt: isoTime,
  expiresAt: isoTime,
  source: z.string().nullable(),
});
export const sessionListSchema = z.strictObject({ items: z.array(sessionInfoSchema) });
export const endedSchema = z.strictObject({ ended: z.boolean() });

/** Operators: the people and tools holding viewer, operator or admin certificates from our CA (the CA's inventory). */
export const OPERATOR_CERTIFICATE_STATUSES = ['active', 'expired', 'revoked'] as const;
export const operatorCertificateSchema = z.strictObject({
  name: z.string(),
  role: z.enum(OPERATOR_ROLES),
  serial: z.string().describe('hex, lower case'),
  commonName: z.string(),
  issuedAt: isoTime,
  notAfter: isoTime,
  status: z.enum(OPERATOR_CERTIFICATE_STATUSES).describe('active: valid now; expired; revoked (on the CRL)'),
  revokedAt: isoTime.nullable(),
  revocationReason: z.string().nullable(),
});
export type OperatorCertificate = z.infer<typeof operatorCertificateSchema>;
export const operatorListSchema = z.strictObject({ items: z.array(operatorCertificateSchema) });
export type OperatorList = z.infer<typeof operatorListSchema>;
export const operatorSerialParamsSchema = z.strictObject({ serial: z.string().regex(/^[0-9a-fA-F]{1,64}$/, 'a certificate serial (hex)') });

export const API_CALLER_ROLES = [...OPERATOR_ROLES, 'service'] as const;
export const whoamiSchema = z.strictObject({
  identity: z.string().describe('as recorded in the audit log'),
  via: z.enum(['certificate', 'session']),
  role: z.enum(API_CALLER_ROLES),
  name: z.string(),
  csrfToken: z.string().optional().describe('sessions only: send it as X-CSRF-Token on POST, PUT and DELETE'),
  sessionExpiresAt: isoTime.optional(),
});
export type Whoami = z.infer<typeof whoamiSchema>;

export const apiErrorSchema = z.strictObject({ statusCode: z.number().int(), error: z.string(), message: z.string() });
export type ApiError = z.infer<typeof apiErrorSchema>;
