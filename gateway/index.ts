export { startGateway } from './gateway.js';
export { DEFAULT_HTTPS_LIMITS } from './gateway.js';
export type { Gateway, GatewayApiOptions, GatewayOptions, GatewayScoringOptions, HttpsLimits } from './gateway.js';
export { readClusterStatus } from './cluster-status.js';
export type { ClusterStatus, NodeFacts } from './cluster-status.js';
export { quietGatewayOptions } from './quiet.js';
export { GATEWAY_MALLOC_ENV } from './memory.js';
