/**
 * policy/: Trust Score topic policies and the effective score. Used by the broker, scoring, `wott policy explain`,
 * `wott score show`, the Grafana boards and the Mosquitto ACLs, so it belongs to none of them.
 */
export { PolicyEngine, policyRuleSchema, policyThresholds, filterProblem, filtersOverlap, witnessTopic, DEVICE_PLACEHOLDER } from './engine.js';
export type { PolicyRule, Decision, Action } from './engine.js';
export { stateCeiling, effectiveScore, enforcedScoreMessage, isRestricted, restrictedTopic, restrictionReason } from './effective-score.js';
export type { StateCeiling } from './effective-score.js';
export { ScoreFence } from './score-fence.js';
