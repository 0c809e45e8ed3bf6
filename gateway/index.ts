export { startGateway } from './gateway.js';
export type { Gateway, GatewayOptions, GatewayScoringOptions } from './gateway.js';
