/**
 * Broker-observed behaviour → decaying penalties. Pure: state in, state out, `now` passed in. Each kind of bad
 * behaviour accumulates a count that halves every `behaviour.halfLife`, and costs max·(1 − e^(−count/scale)), so a
 * storm saturates instead of driving the score to zero in one burst, and the score recovers gradually.
 */
import type { BehaviourEvent } from '../protocol/index.js';
import type { ScoreModel } from './model.js';

export interface Decaying {
  value: number;
  at: number;
}

export interface BehaviourState {
  authFailures: Decaying;
  denials: Decaying;
  connects: Decaying;
  anomalies: Decaying;
  /** Messages/s the device usually sends, learned from its own counters events. */
  baseline: { rate: number; samples: number };
}

export const PENALTY_IDS = ['authFailures', 'denials', 'churn', 'rateAnomaly'] as const;

export interface Penalty {
  id: (typeof PENALTY_IDS)[number];
  penalty: number;
  reason: string;
  fix: string;
}

export function emptyBehaviour(): BehaviourState {
  return { authFailures: { value: 0, at: 0 }, denials: { value: 0, at: 0 }, connects: { value: 0, at: 0 }, anomalies: { value: 0, at: 0 }, baseline: { rate: 0, samples: 0 } };
}

export function decayed(d: Decaying, now: number, halfLife: number): number {
  if (d.value === 0) return 0;
  return d.value * Math.pow(2, -Math.max(0, now - d.at) / halfLife);
}

function add(d: Decaying, amount: number, now: number, halfLife: number): void {
  d.value = decayed(d, now, halfLife) + amount;
  d.at = now;
}

/**
 * Whether an event can change a device's behaviour state at all. A disconnect never does; nor does the reconnect a
 * broker restart causes, which is the broker's doing (see firstSinceStart in protocol/). The engine asks this first,
 * so such events cost no computation and no store write.
 */
export function movesBehaviour(event: BehaviourEvent): boolean {
  if (event.type === 'disconnect') return false;
  if (event.type === 'connect') return !event.firstSinceStart;
  return true;
}

/** Folds one behaviour event into the state (mutates it). */
export function applyEvent(state: BehaviourState, event: BehaviourEvent, model: ScoreModel, now: number): void {
  if (!movesBehaviour(event)) return;
  const b = model.behaviour;
  const h = b.halfLife;
  switch (event.type) {
    case 'auth_failure':
      // Anyone can mint a certificate with a victim's CN: a failure that did not prove possession of a key we
      // certified for this device says nothing about it, and must never move its score.
      if (event.verified) add(state.authFailures, 1, now, h);
      break;
    case 'publish_denied':
    case 'subscribe_denied':
      add(state.denials, 1, now, h);
      break;
    case 'connect':
      add(state.connects, 1, now, h);
      break;
    case 'counters': {
      const c = event.counters;
      if (!c) break;
      // Denials beyond the broker's per-interval event cap arrive only as a count.
      if (c.suppressedEvents > 0) add(state.denials, c.suppressedEvents, now, h);
      const rate = (c.messagesIn * 1000) / c.intervalMs;
      const base = state.baseline;
      const anomalous = base.samples >= b.rate.warmup && rate > b.rate.minRate && rate > base.rate * b.rate.factor;
      if (anomalous) add(state.anomalies, 1, now, h);
      // An anomaly still moves the baseline, slowly, so a lasting legitimate change is learned in time.
      const alpha = anomalous ? b.rate.alpha / 10 : base.samples === 0 ? 1 : b.rate.alpha;
      base.rate += alpha * (rate - base.rate);
      base.samples++;
      break;
    }
  }
}

const curve = (count: number, max: number, scale: number) => max * (1 - Math.exp(-count / scale));
const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/** Current penalties (only the non-zero ones, rounded to 0.001). */
export function behaviourPenalties(state: BehaviourState, model: ScoreModel, now: number): Penalty[] {
  const b = model.behaviour;
  const h = b.halfLife;
  const out: Penalty[] = [];
  const auth = decayed(state.authFailures, now, h);
  const denials = decayed(state.denials, now, h);
  const churn = Math.max(0, decayed(state.connects, now, h) - b.churn.allowance);
  const anomalies = decayed(state.anomalies, now, h);
  // Reasons are built only for penalties that exist: this runs for every score computed.
  const push = (id: Penalty['id'], penalty: number, reason: () => string, fix: string) => {
    const rounded = Math.round(penalty * 1000) / 1000;
    if (rounded > 0) out.push({ id, penalty: rounded, reason: reason(), fix });
  };
  push('authFailures', curve(auth, b.authFailures.max, b.authFailures.scale), () => `${auth.toFixed(1)} recent failed connection attempts with this device's name (half-life ${minutes(h)})`, "check the device's certificate and clock; if it is not the device, find who connects with its name");
  push('denials', curve(denials, b.denials.max, b.denials.scale), () => `${denials.toFixed(1)} recent publish/subscribe denials (half-life ${minutes(h)})`, 'make the device use only topics its policy allows (wott policy explain)');
  push('churn', curve(churn, b.churn.max, b.churn.scale), () => `reconnecting often: ${churn.toFixed(1)} connects above the allowance of ${b.churn.allowance}`, 'check the device for crashes, duplicate client ids or a flaky network');
  push('rateAnomaly', curve(anomalies, b.rate.max, b.rate.scale), () => `message rate above ${b.rate.factor}× its own baseline of ${state.baseline.rate.toFixed(1)}/s in ${anomalies.toFixed(1)} recent intervals`, 'find what makes the device publish more than usual');
  return out;
}
