/**
 * The effective score: the score decisions are made with, from what scoring computed and the device's CA state.
 *
 * These rules live here, once, because the Aedes plugin, the Mosquitto ACL compiler, scoring, `wott score show`
 * and `wott policy explain` must all agree on them. Scoring's model adds its own ceilings (no telemetry yet,
 * default credentials); the state ceilings below stand above every model and every rule.
 */
import { topics, type DeviceState, type ScoreFactor, type ScoreMessage } from '../protocol/index.js';
import type { Action } from './engine.js';

/** A ceiling a CA state puts on the score, with the one-line reason and fix every component shows. */
export interface StateCeiling {
  state: DeviceState;
  ceiling: number;
  reason: string;
  fix: string;
}

/** Unclaimed, quarantined and revoked devices get no trust at all, whatever scoring computed. */
const STATE_CEILINGS: ReadonlyMap<DeviceState | undefined, StateCeiling> = new Map(
  (
    [
      ['unclaimed', 'claim it: wott device claim ID'],
      ['quarantined', 'wott device release ID once it is clean'],
      ['revoked', 're-enroll with a new token'],
    ] as const
  ).map(([state, fix]) => [state, { state, ceiling: 0, reason: `capped: the device is ${state}`, fix }]),
);

/** The ceiling `state` puts on the score, or undefined when it puts none (active, or unknown to the CA). */
export function stateCeiling(state: DeviceState | undefined): StateCeiling | undefined {
  return STATE_CEILINGS.get(state);
}

/** The score the broker decides with: `score` (scoring's, or the initial score) under the state's ceiling. */
export function effectiveScore(score: number, state: DeviceState | undefined): number {
  const cap = STATE_CEILINGS.get(state);
  return cap === undefined ? score : Math.min(score, cap.ceiling);
}

/**
 * A score message as the broker enforces it: capped by the state ceiling, with the ceiling as a factor (the shape
 * scoring itself gives a score it computed knowing the state). Unchanged when the state caps nothing further.
 */
export function enforcedScoreMessage(message: ScoreMessage, state: DeviceState | undefined): ScoreMessage {
  const cap = STATE_CEILINGS.get(state);
  if (!cap || message.score <= cap.ceiling) return message;
  const factor: ScoreFactor = { id: `ceiling:${cap.state}`, contribution: round(cap.ceiling - message.score), reason: cap.reason, fix: cap.fix };
  const factors = [...message.factors.filter((f) => f.id !== factor.id), factor].sort((a, b) => a.contribution - b.contribution);
  return { ...message, score: cap.ceiling, factors };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

// ------------------------------------------------------------------ restricted devices

/**
 * Devices isolated whatever the rules say: they may publish their own telemetry (so an operator sees their state)
 * and read their own score, nothing else. Revoked devices are not here: they may not connect at all.
 */
const RESTRICTED_STATES: ReadonlySet<DeviceState | undefined> = new Set(['unclaimed', 'quarantined']);

export function isRestricted(state: DeviceState | undefined): boolean {
  return RESTRICTED_STATES.has(state);
}

/** The one topic a restricted device may use for `action`: its own telemetry (publish) or its own score (subscribe). */
export function restrictedTopic(device: string, action: Action): string {
  return action === 'publish' ? topics.telemetry(device) : topics.scores(device);
}

/** Why a restricted device is limited, in the words the broker and `wott policy explain` use. */
export function restrictionReason(state: DeviceState | undefined): string {
  return `the device is ${state}: it may only publish its own telemetry and read its own score, whatever the rules say`;
}
