/**
 * The fleet read routes' shapes (issue 13): what the API adds about a device beyond its inventory facts (score,
 * factors, findings, recommended actions, sessions, behaviour events, history), and the fleet-wide lists of
 * recommended actions, vulnerabilities and policies. protocol/api.ts extends the device list, detail and summary
 * with the building blocks here.
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';
import { BEHAVIOUR_EVENT_TYPES, DEVICE_STATES } from './messages.js';

const isoTime = z.string().describe('ISO 8601 time');
const deviceId = z.string().regex(DEVICE_ID_PATTERN, 'a device id: 1-63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit');

export const VULN_SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'] as const;
export type VulnSeverityName = (typeof VULN_SEVERITIES)[number];

/** A recommended action's id: a score factor id (`firewall`, `ceiling:defaultCredentials`) or `cve:CVE-2024-1234`. */
export const ACTION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,99}$/;
export const actionIdSchema = z.string().regex(ACTION_ID_PATTERN, 'an action id: 1-100 of A-Z, a-z, 0-9, ":", ".", "_", "-"');

export const vulnCountsSchema = z.strictObject(Object.fromEntries(VULN_SEVERITIES.map((s) => [s, z.number().int()])) as Record<VulnSeverityName, z.ZodNumber>);
export type VulnCounts = z.infer<typeof vulnCountsSchema>;

export const factorInfoSchema = z.strictObject({
  id: z.string(),
  contribution: z.number().describe('what it adds to (negative: takes from) the score'),
  reason: z.string(),
  fix: z.string().nullable(),
});
export type FactorInfo = z.infer<typeof factorInfoSchema>;

export const findingInfoSchema = z.strictObject({
  cve: z.string(),
  package: z.string().describe('the source package'),
  installed: z.string(),
  fixed: z.string(),
  severity: z.enum(VULN_SEVERITIES),
  remote: z.boolean().nullable(),
  exposed: z.boolean(),
  fixCommand: z.string().describe('the command that fixes it'),
});
export type FindingInfo = z.infer<typeof findingInfoSchema>;

export const ACTION_STATUSES = ['open', 'snoozed', 'ignored'] as const;
export const deviceActionSchema = z.strictObject({
  id: z.string(),
  title: z.string(),
  fix: z.string(),
  cost: z.number().describe('score points this costs the device now (snoozed and ignored actions still cost them)'),
  status: z.enum(ACTION_STATUSES),
  snoozedUntil: isoTime.nullable(),
});
export type DeviceAction = z.infer<typeof deviceActionSchema>;

export const sessionFactSchema = z.strictObject({ clientId: z.string(), since: isoTime, remoteAddress: z.string().nullable() });
export type SessionFact = z.infer<typeof sessionFactSchema>;

export const behaviourEventInfoSchema = z.strictObject({
  type: z.enum(BEHAVIOUR_EVENT_TYPES),
  time: isoTime,
  topic: z.string().nullable(),
  reason: z.string().nullable(),
  remoteAddress: z.string().nullable(),
});
export type BehaviourEventInfo = z.infer<typeof behaviourEventInfoSchema>;

export const historyPointSchema = z.strictObject({ time: isoTime, score: z.number(), model: z.string(), factors: z.array(z.strictObject({ id: z.string(), contribution: z.number() })) });
export type HistoryPoint = z.infer<typeof historyPointSchema>;

/** What the device list adds per device (all from memory). */
export const deviceLiveSchema = z.strictObject({
  score: z.number().describe('the effective score: what the broker enforces now (state ceilings applied)'),
  worstFactor: z.strictObject({ id: z.string(), contribution: z.number(), reason: z.string() }).nullable().describe('the factor that costs most'),
  lastReport: isoTime.nullable().describe('the last state report (telemetry) the broker accepted from the device'),
  connected: z.strictObject({ since: isoTime, remoteAddress: z.string().nullable(), sessions: z.number().int() }).nullable(),
  vulnerabilities: vulnCountsSchema,
});

/** ?below=publish:weather/# style: the action and the rule's topic filter. */
export const ruleRefSchema = z
  .string()
  .max(1040)
  .regex(/^(publish|subscribe):[\x21-\x7e]{1,1024}$/, '{publish|subscribe}:{a policy rule topic, as in wott.yaml}')
  .describe('devices below the threshold of this rule for this action, e.g. publish:payments/#');

// ------------------------------------------------------------------ fleet-wide lists

export const actionGroupSchema = z.strictObject({
  id: z.string(),
  title: z.string(),
  fix: z.string(),
  devices: z.array(z.strictObject({ id: z.string(), cost: z.number(), status: z.enum(ACTION_STATUSES), snoozedUntil: isoTime.nullable() })).describe('costliest first, at most ?devices= of them'),
  affected: z.number().int().describe('devices listed for this action in all (devices may hold fewer)'),
  open: z.number().int().describe('devices where it is neither snoozed nor ignored'),
});
export type ActionGroup = z.infer<typeof actionGroupSchema>;
export const actionListQuerySchema = z.strictObject({
  status: z.enum(['open', 'snoozed', 'ignored', 'all']).default('open').describe('which decisions to list (groups keep only those devices)'),
  limit: z.coerce.number().int().min(1).max(500).default(100).describe('actions'),
  devices: z.coerce.number().int().min(1).max(10_000).default(100).describe('devices listed per action'),
  format: z.enum(['json', 'csv']).default('json'),
});
export const actionListSchema = z.strictObject({ items: z.array(actionGroupSchema) });
export type ActionList = z.infer<typeof actionListSchema>;

export const actionParamsSchema = z.strictObject({ id: deviceId, action: actionIdSchema });
export const SNOOZE_DURATIONS = ['24h', '7d'] as const;
export const snoozeBodySchema = z.strictObject({ duration: z.enum(SNOOZE_DURATIONS) });
export const actionDecisionSchema = z.strictObject({
  device: z.string(),
  action: z.string(),
  status: z.enum(ACTION_STATUSES),
  snoozedUntil: isoTime.nullable(),
});
export type ActionDecision = z.infer<typeof actionDecisionSchema>;

export const vulnListQuerySchema = z.strictObject({
  severity: z.enum(VULN_SEVERITIES).optional(),
  q: z.string().max(100).regex(/^[A-Za-z0-9._:+~-]*$/, 'part of a CVE id or package name').optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  format: z.enum(['json', 'csv']).default('json'),
});
export const vulnEntrySchema = z.strictObject({
  cve: z.string(),
  severity: z.enum(VULN_SEVERITIES),
  devices: z.array(z.strictObject({ id: z.string(), package: z.string(), installed: z.string(), fixed: z.string(), fixCommand: z.string() })),
});
export type VulnEntryInfo = z.infer<typeof vulnEntrySchema>;
export const vulnListSchema = z.strictObject({ items: z.array(vulnEntrySchema), total: z.number().int().describe('CVEs matching, before the limit') });
export type VulnList = z.infer<typeof vulnListSchema>;

export const policyInfoSchema = z.strictObject({
  topic: z.string(),
  publish: z.number().nullable().describe('minimum score; null: the rule denies publishing'),
  subscribe: z.number().nullable(),
  passing: z.strictObject({ publish: z.number().int(), subscribe: z.number().int() }).describe('devices whose effective score meets the threshold now'),
});
export const policyListSchema = z.strictObject({ devices: z.number().int(), items: z.array(policyInfoSchema) });
export type PolicyList = z.infer<typeof policyListSchema>;

export const explainBodySchema = z.strictObject({
  device: deviceId,
  topic: z.string().min(1).max(1024).regex(/^[^\0]*$/, 'no NUL characters'),
  action: z.enum(['publish', 'subscribe']),
});
export const explainResultSchema = z.strictObject({
  allowed: z.boolean(),
  score: z.number(),
  state: z.enum(DEVICE_STATES).nullable(),
  rule: z.string().nullable().describe('the topic filter of the rule that decided'),
  threshold: z.number().nullable(),
  reason: z.string(),
});
export type ExplainResult = z.infer<typeof explainResultSchema>;

export const fleetInsightSummarySchema = z.strictObject({
  scoreHistogram: z.array(z.strictObject({ from: z.number(), to: z.number(), devices: z.number().int() })).describe('effective scores in ten bands'),
  belowThreshold: z.array(z.strictObject({ topic: z.string(), action: z.enum(['publish', 'subscribe']), threshold: z.number(), devices: z.number().int() })),
  vulnerabilities: vulnCountsSchema.describe('findings across the fleet by severity'),
  topActions: z.array(z.strictObject({ id: z.string(), title: z.string(), devices: z.number().int() })).describe('open actions by how many devices need them'),
});
