/**
 * The per-delivery check, made a map lookup and a comparison (issue 20).
 *
 * Whether a subscriber may receive a topic depends on the topic's governing rule, the subscriber's identity and CA
 * state (restrictions, namespace) and its score. All but the score change rarely, so each connection keeps
 * topic → the score it needs: -Infinity (always: namespace, admin service), +Infinity (never: restricted, no rule,
 * another party's topic) or the rule's threshold. The score is read again whenever the score cache changed (its
 * version), so a score drop applies from the next message. The cache is dropped when the shared generation moves (a policy reload, a CA
 * change the trust source reported) or the trust source's stateVersion moves (any device's state changed: a
 * quarantine, release, claim or revocation), so a restriction applies from the very next delivery.
 * Pure logic: the broker owns the generation and the maps; PolicyEngine.decide() stays for explanations.
 */
import { isRestricted, restrictedTopic, stateCeiling, type PolicyEngine } from '../policy/index.js';
import { isProtocolTopic, topics, type DeviceState } from '../protocol/index.js';
import type { Identity } from './identity.js';
import { namespaceForward } from './namespace.js';

/**
 * The broker's live score cache (device → score), with a version that moves with every change: a gate then reads a
 * device's score from the map only after it changed, not on every delivery. A Map subclass, so that no write can
 * skip the version.
 */
export class ScoreCache extends Map<string, number> {
  version = 0;

  override set(device: string, score: number): this {
    this.version++;
    return super.set(device, score);
  }

  override delete(device: string): boolean {
    this.version++;
    return super.delete(device);
  }

  override clear(): void {
    this.version++;
    super.clear();
  }
}

/** What the gates of one broker read; the broker mutates it (generation, policy), the gates only read it. */
export interface GateSource {
  /** Bumped whenever a cached threshold may be wrong: a policy reload or a change of some device's CA state. */
  generation: number;
  policy: PolicyEngine;
  /** The live score cache (device → score) and the score of a device it does not hold. */
  readonly scores: ScoreCache;
  readonly initialScore: number;
  /** The CA's view: deviceState and the version that moves with its answers (broker/trust.ts). */
  readonly trust: { deviceState(id: string): DeviceState | undefined; readonly stateVersion?: number };
}

const ALWAYS = -Infinity;
const NEVER = Infinity;
/** Topics one connection remembers before starting over: a subscriber to `#` hearing endless topics stays bounded. */
export const GATE_TOPIC_LIMIT = 1024;

export class DeliveryGate<Counters = unknown> {
  /** The broker's per-interval counters for this identity and the flush they belong to (owned by the broker). */
  counters: Counters | undefined = undefined;
  countersEpoch = -1;
  private generation = -1;
  private stateVersion: number | undefined = -1;
  private state: DeviceState | undefined;
  /** The state's ceiling on the score (policy/effective-score.ts): 0 for unclaimed, quarantined, revoked. */
  private ceiling = Infinity;
  /** The score under its ceiling, as of the cache's `scoreVersion`. */
  private score = 0;
  private scoreVersion = -1;
  private readonly needs = new Map<string, number>();
  /** The same for publishing, for a device's topics outside the wott/ namespace (publishAllowed). */
  private readonly publishNeeds = new Map<string, number>();

  constructor(
    readonly who: Identity,
    private readonly source: GateSource,
  ) {}

  /** May this connection receive `topic` now? The same answer authorizeForward gave before the cache existed. */
  allows(topic: string): boolean {
    const source = this.source;
    if (this.generation !== source.generation || this.stateVersion !== source.trust.stateVersion) this.reset();
    let need = this.needs.get(topic);
    if (need === undefined) need = this.learn(topic);
    if (need === ALWAYS) return true;
    if (need === NEVER) return false;
    return this.currentScore() >= need;
  }

  /**
   * May this device publish `topic` by policy alone, now? true: allowed, with the answer authorizePublish's full check
   * gives. false: the full check decides (it may still allow: a restricted device's own topics, the namespace) and
   * explains a refusal. The publish path's map lookups (state, score, memo) then run once per change, not per message.
   */
  publishAllowed(topic: string): boolean {
    const source = this.source;
    if (this.generation !== source.generation || this.stateVersion !== source.trust.stateVersion) this.reset();
    if (this.who.kind !== 'device' || isRestricted(this.state)) return false;
    let need = this.publishNeeds.get(topic);
    if (need === undefined) {
      need = isProtocolTopic(topic) ? NEVER : (source.policy.match(topic, this.who.id)?.publish ?? NEVER);
      if (this.publishNeeds.size >= GATE_TOPIC_LIMIT) this.publishNeeds.clear();
      this.publishNeeds.set(topic, need);
    }
    if (need === NEVER) return false;
    return this.currentScore() >= need;
  }

  private currentScore(): number {
    const scores = this.source.scores;
    if (this.scoreVersion !== scores.version) {
      this.scoreVersion = scores.version;
      const score = scores.get(this.who.id) ?? this.source.initialScore;
      this.score = score < this.ceiling ? score : this.ceiling;
    }
    return this.score;
  }

  /** Topics cached now (tests). */
  get size(): number {
    return this.needs.size;
  }

  private reset(): void {
    this.generation = this.source.generation;
    this.stateVersion = this.source.trust.stateVersion;
    this.state = this.who.kind === 'device' ? this.source.trust.deviceState(this.who.id) : undefined;
    this.ceiling = stateCeiling(this.state)?.ceiling ?? Infinity;
    this.scoreVersion = -1; // the ceiling may have moved
    this.needs.clear();
    this.publishNeeds.clear();
  }

  private learn(topic: string): number {
    const who = this.who;
    let need: number;
    // A restricted device still hears its own credentials topic: withdrawals must reach it.
    if (who.kind === 'device' && isRestricted(this.state)) need = topic === restrictedTopic(who.id, 'subscribe') || topic === topics.credentials(who.id) ? ALWAYS : NEVER;
    else {
      const ns = namespaceForward(who, topic);
      if (ns.applies) need = ns.allowed ? ALWAYS : NEVER;
      else if (who.kind === 'service') need = who.role === 'admin' ? ALWAYS : NEVER;
      else need = this.source.policy.match(topic, who.id)?.subscribe ?? NEVER;
    }
    if (this.needs.size >= GATE_TOPIC_LIMIT) this.needs.clear();
    this.needs.set(topic, need);
    return need;
  }
}
