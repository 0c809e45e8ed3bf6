export { WottPlugin } from './plugin.js';
export type { WottPluginOptions, PluginLogger } from './plugin.js';
// The policy engine lives in policy/ (scoring, the CLI and the Mosquitto ACLs use it too); wott/broker users keep these names.
export { PolicyEngine, policyRuleSchema, policyThresholds, filtersOverlap, witnessTopic, DEVICE_PLACEHOLDER } from '../policy/index.js';
export type { PolicyRule, Decision, Action } from '../policy/index.js';
export { staticTrustSource } from './trust.js';
export type { TrustSource } from './trust.js';
export { identityFromCertificate } from './identity.js';
export type { Identity } from './identity.js';
export { DEFAULT_LIMITS, resolveLimits, RateLimiter, OpenCounter, RetainedLedger, retainedRefusal } from './limits.js';
export type { BrokerLimits, RateRule, RetainedLimits, RetainedAdmission, DeepPartial } from './limits.js';
export { PacketGuard, isMqttString } from './packet-guard.js';
export { clusterBrokerParts, redisConnectionOptions } from './cluster.js';
export type { RedisClusterOptions, ClusterBrokerParts } from './cluster.js';
export { RedisRetainedLedger } from './retained-redis.js';
export { localBus } from './local-bus.js';
export { encodeMessage as encodeBusMessage, decodeMessage as decodeBusMessage } from './bus-entry.js';
export type { BusPacket, BusEntry } from './bus-entry.js';
export { encodeInterest as encodeBusInterest, decodeInterest as decodeBusInterest } from './bus-interest.js';
