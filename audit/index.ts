/** audit/: the fleet audit (issue 19): checks over one facts snapshot, its collection, the gateway's schedule. */
export { CHECKS, runChecks, findingKey, LONG_TOKEN_MS, STALE_VULN_MS, FAILED_HANDSHAKES, type CheckSpec } from './checks.js';
export type { AuditFacts, AuditDevice, AuditCertificate, CaCertFacts, LiveFacts, VulnFinding } from './facts.js';
export { collectFacts, caCertFacts, type AuditSettings, type CollectOptions, type ScoreSource } from './collect.js';
export { AuditScheduler, DEFAULT_AUDIT_INTERVAL_MS, DEFAULT_AUDIT_FIRST_RUN_MS, type AuditSchedulerOptions } from './scheduler.js';
export { auditPoints, AUDIT_MEASUREMENTS } from './points.js';
