export { FleetService, localActor } from './service.js';
export type { AuditAction, DeviceWithCertificates } from './service.js';
export { FleetView } from './view.js';
export type { DeviceFacts, FleetChange, FleetViewOptions, RevokedCertificate, ServiceIdentity } from './view.js';
export { fleetTrustSource, fleetCaFacts } from './trust-source.js';
export { openFleetInventory, openLocalInventory, openLocalView } from './local.js';
export { FleetInsights, EVENT_RING } from './insights.js';
export type { BrokerFacts, LatestScore, RecommendedAction } from './insights.js';
export { TrustCache, DEFAULT_SCORE_RING, type ScoreSource, type TrustEvent, type FeedEvent, type TrustCacheOptions } from './trust.js';
