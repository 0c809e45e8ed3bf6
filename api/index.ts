/** The HTTPS API (issue 13): Fastify under /api/v1 on the gateway's HTTPS listener; operators and their sessions. */
export { createApi, isApiPath, type ApiOptions, type ApiLogger, type DeviceEndpoints, type NodeHandler } from './app.js';
export { ROUTES, enrollmentCommands, type RouteSpec, type ApiDeps } from './routes.js';
export { buildOpenApi, openApiText } from './openapi.js';
export { Sessions, csrfTokenFor, type SessionOptions } from './sessions.js';
export { FleetAdapter, type FleetAdapterOptions } from './fleet-adapter.js';
export { FleetRefusal, type FleetOperations, type DeviceFilter, type RevocationReasonName } from './fleet-port.js';
export { DEFAULT_REFUSAL_LIMITS, type Caller, type RefusalLimits } from './auth.js';
export { TRUST_ROUTES, TrustStreams, DEFAULT_TRUST_STREAM_LIMITS, trustStreams, type TrustOperations, type TrustStreamLimits } from './routes-trust.js';
export { EVENT_ROUTES, FleetEventStreams, DEFAULT_EVENT_STREAM_LIMITS, fleetEventStreams, type FleetEventSource, type EventStreamLimits } from './routes-events.js';
export { BULK_ROUTES } from './routes-bulk.js';
export { CREDENTIAL_ROUTES, type CredentialOperations, type CredentialView } from './routes-credentials.js';
export { AUDIT_ROUTES, type AuditSource, type ReportSource } from './routes-audit.js';
