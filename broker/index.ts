export { WottPlugin } from './plugin.js';
export type { WottPluginOptions, PluginLogger } from './plugin.js';
export { PolicyEngine, policyRuleSchema, policyThresholds, filtersOverlap, witnessTopic, DEVICE_PLACEHOLDER } from './policy.js';
export type { PolicyRule, Decision, Action } from './policy.js';
export { InventoryTrustSource, staticTrustSource } from './trust.js';
export type { TrustSource } from './trust.js';
export { identityFromCertificate } from './identity.js';
export type { Identity } from './identity.js';
