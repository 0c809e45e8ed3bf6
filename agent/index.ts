export { enrollAgent, runAgent, buildReport, defaultMqttUrl } from './agent.js';
export type { EnrollOptions, RunOptions, RunningAgent } from './agent.js';
export { RenewalLoop, renewalDelay, backoffDelay } from './renewal.js';
export { TelemetryPublisher } from './publisher.js';
export { AgentStore } from './store.js';
export { EstError, fetchCaCertificates, verifyIssued, parseCertsOnly } from './est-client.js';
export { tpmRefresh, tpmKeyFor } from './agent.js';
export { TpmKey, TpmError, DEFAULT_TPM_HANDLE } from './tpm.js';
export { simpleEnroll, simpleReenroll, createCsr, tpmHeaders } from './est-client.js';
