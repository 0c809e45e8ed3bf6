export { FleetService, localActor } from './service.js';
export type { AuditAction } from './service.js';
