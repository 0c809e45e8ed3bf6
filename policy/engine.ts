/**
 * Trust Score topic policies: pure, in-memory, O(topic levels) per decision.
 *
 * Rules are MQTT topic filters with a minimum score per action. `{device}` as a whole level is bound to the
 * caller's own device id. When several rules match a topic, the most specific one decides, compared level by level
 * from the left: a literal beats `{device}`, which beats `+`, which beats `#`. So `payments/#: 0.9` governs
 * `payments/x` even when `#: 0.1` exists, and `public/#: 0.1` can open a corner under a strict `#: 0.8`.
 * A rule without an action's threshold denies that action. A topic no rule matches is denied (zero trust).
 */
import { z } from 'zod';

export type Action = 'publish' | 'subscribe';
export const DEVICE_PLACEHOLDER = '{device}';

const threshold = z.number().min(0, 'a minimum score is between 0 and 1').max(1, 'a minimum score is between 0 and 1');

export const policyRuleSchema = z
  .object({
    topic: z
      .string()
      .min(1)
      .max(1024)
      .superRefine((topic, ctx) => {
        const problem = filterProblem(topic);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    publish: threshold.optional(),
    subscribe: threshold.optional(),
  })
  .strict();

export type PolicyRule = z.infer<typeof policyRuleSchema>;

/** Why a policy topic filter is unusable, or undefined when it is fine. */
export function filterProblem(filter: string): string | undefined {
  if (filter.includes('\0')) return 'topic filter contains a NUL character';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "'#' must be a whole level and the last one";
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
    if (level.includes('{') || level.includes('}')) {
      if (level !== DEVICE_PLACEHOLDER) return `only ${DEVICE_PLACEHOLDER} is supported as a placeholder, as a whole level`;
    }
  }
  return undefined;
}

export interface Decision {
  allowed: boolean;
  /** The rule that decided, or undefined when no rule matched (denied). */
  rule?: PolicyRule;
  /** Minimum score the deciding rule asks for this action (undefined: the rule does not allow the action). */
  threshold?: number;
  score: number;
  reason: string;
}

interface Node {
  literal: Map<string, Node>;
  device?: Node;
  plus?: Node;
  /** Rule ending in `#` at this level (matches this level's parent and everything below). */
  hash?: PolicyRule;
  /** Rule ending exactly here. */
  rule?: PolicyRule;
}

const newNode = (): Node => ({ literal: new Map() });

/** The memo of a topic whose match depends on the caller's id (a `{device}` rule lies on its path): device → rule. */
class PerDevice extends Map<string, PolicyRule | null> {}

/** Merges two rules with the same filter: the stricter threshold per action wins (denial beats any number). */
function merge(a: PolicyRule, b: PolicyRule): PolicyRule {
  const strict = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : Math.max(x, y));
  return { topic: a.topic, publish: strict(a.publish, b.publish), subscribe: strict(a.subscribe, b.subscribe) };
}

/** Topics (and topic/device pairs) remembered by allows() before the memo starts over; see PolicyEngine. */
export const DEFAULT_DECISION_MEMO_LIMIT = 65_536;

export class PolicyEngine {
  private readonly root: Node = newNode();
  readonly rules: readonly PolicyRule[];
  /**
   * topic → the rule that governs it (null: none), so the per-delivery check is a map lookup and a comparison.
   * The rules are fixed for an engine's life (a reload builds a new engine), so nothing goes stale. Bounded: a
   * client publishing to endless distinct topics only makes the memo start over, never grow past `memoLimit`.
   */
  private readonly memo = new Map<string, PolicyRule | null | PerDevice>();
  /** Answers held in the memo (a per-device topic counts one per device). */
  private memoEntries = 0;
  /** Set by walk() when a `{device}` branch could have decided: the answer then depends on who asks. */
  private sawDevice = false;

  constructor(
    rules: readonly PolicyRule[],
    private readonly memoLimit = DEFAULT_DECISION_MEMO_LIMIT,
  ) {
    this.rules = rules;
    for (const rule of rules) this.add(rule);
  }

  /** Entries the decision memo holds now (tests, metrics). */
  get memoSize(): number {
    return this.memoEntries;
  }

  private add(rule: PolicyRule): void {
    const problem = filterProblem(rule.topic);
    if (problem) throw new Error(`policy topic "${rule.topic}": ${problem}`);
    let node = this.root;
    for (const level of rule.topic.split('/')) {
      if (level === '#') {
        node.hash = node.hash ? merge(node.hash, rule) : rule;
        return;
      }
      let next: Node | undefined;
      if (level === '+') next = node.plus ??= newNode();
      else if (level === DEVICE_PLACEHOLDER) next = node.device ??= newNode();
      else {
        next = node.literal.get(level);
        if (!next) node.literal.set(level, (next = newNode()));
      }
      node = next;
    }
    node.rule = node.rule ? merge(node.rule, rule) : rule;
  }

  /** The most specific rule matching a concrete topic for `device` (undefined device: `{device}` never matches). */
  match(topic: string, device: string | undefined): PolicyRule | undefined {
    return this.walk(this.root, topic.split('/'), 0, device, topic.charCodeAt(0) === 36 /* $ */);
  }

  private walk(node: Node, levels: string[], i: number, device: string | undefined, dollar: boolean): PolicyRule | undefined {
    if (i === levels.length) return node.rule ?? node.hash; // `a/#` also matches `a`
    const level = levels[i]!;
    const wildOk = !(dollar && i === 0); // MQTT: wildcards at the first level never match $-topics
    const lit = node.literal.get(level);
    let found = lit && this.walk(lit, levels, i + 1, device, dollar);
    if (found) return found;
    if (node.device) this.sawDevice = true;
    if (node.device && device !== undefined && level === device) {
      found = this.walk(node.device, levels, i + 1, device, dollar);
      if (found) return found;
    }
    if (node.plus && wildOk) {
      found = this.walk(node.plus, levels, i + 1, device, dollar);
      if (found) return found;
    }
    return wildOk ? node.hash : undefined;
  }

  /** The hot-path form of decide(): same answer, no explanation built, memoised (every delivery runs this). */
  allows(topic: string, action: Action, device: string | undefined, score: number): boolean {
    const threshold = this.governing(topic, device)?.[action];
    return threshold !== undefined && score >= threshold;
  }

  /** match(), through the memo. */
  private governing(topic: string, device: string | undefined): PolicyRule | undefined {
    const known = this.memo.get(topic);
    if (known instanceof PerDevice) {
      const key = device ?? '';
      let rule = known.get(key);
      if (rule === undefined) {
        rule = this.match(topic, device) ?? null;
        if (this.makeRoom()) return rule ?? undefined; // the memo started over: the topic's entry went with it
        known.set(key, rule);
      }
      return rule ?? undefined;
    }
    if (known !== undefined) return known ?? undefined;
    this.sawDevice = false;
    const rule = this.match(topic, device) ?? null;
    this.makeRoom();
    // A `{device}` rule on the path: remember the answer per device (a map per topic, no key strings to build).
    this.memo.set(topic, this.sawDevice ? new PerDevice([[device ?? '', rule]]) : rule);
    return rule ?? undefined;
  }

  /** Counts one more answer; when the memo is full it starts over (true). */
  private makeRoom(): boolean {
    if (this.memoEntries >= this.memoLimit) {
      this.memo.clear();
      this.memoEntries = 1;
      return true;
    }
    this.memoEntries++;
    return false;
  }

  /** May `device` at `score` do `action` on the concrete `topic`? */
  decide(topic: string, action: Action, device: string | undefined, score: number): Decision {
    const rule = this.match(topic, device);
    if (!rule) return { allowed: false, score, reason: `no policy rule matches "${topic}" (unmatched topics are denied)` };
    const threshold = rule[action];
    if (threshold === undefined) return { allowed: false, rule, score, reason: `rule "${rule.topic}" does not allow ${action}` };
    const allowed = score >= threshold;
    return {
      allowed,
      rule,
      threshold,
      score,
      reason: allowed
        ? `rule "${rule.topic}" needs ${threshold} to ${action}; score ${score} meets it`
        : `rule "${rule.topic}" needs ${threshold} to ${action}; score ${score} is below it`,
    };
  }

  /**
   * Subscription check for a filter. A concrete filter is decided like a topic. A wildcard filter is granted when
   * some topic under it may be received at `score`: for each rule overlapping the filter we take a witness topic in
   * both (wildcard levels become a level no rule names) and decide it like any topic, so more specific rules and
   * merged duplicates override exactly as they do for deliveries. Every delivery is then re-checked per topic
   * (authorizeForward), so `#` granted for `weather/...` never delivers `payments/...` to a low score.
   */
  decideSubscribe(filter: string, device: string | undefined, score: number): Decision {
    if (!filter.includes('+') && !filter.includes('#')) return this.decide(filter, 'subscribe', device, score);
    for (const rule of this.rules) {
      if (rule.subscribe === undefined || score < rule.subscribe) continue;
      const witness = witnessTopic(filter, rule.topic, device);
      if (witness === undefined) continue;
      const decision = this.decide(witness, 'subscribe', device, score);
      if (decision.allowed) {
        return { ...decision, reason: `rule "${decision.rule!.topic}" lets score ${score} receive part of "${filter}"; each delivery is checked per topic` };
      }
    }
    return { allowed: false, score, reason: `no topic under "${filter}" may be received at score ${score}` };
  }
}

/** A level no rule can name (MQTT forbids U+0000 in topics, so it only ever matches wildcards). */
const ANY_LEVEL = '\u0000';

/** A concrete topic matched by both filters, or undefined when they do not overlap. */
export function witnessTopic(filter: string, ruleFilter: string, device: string | undefined): string | undefined {
  const a = filter.split('/');
  const b = ruleFilter.split('/').map((level) => (level === DEVICE_PLACEHOLDER ? device : level));
  const out: string[] = [];
  const concrete = (level: string) => (level === '+' ? ANY_LEVEL : level);
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (i < b.length && y === undefined) return undefined; // {device} with no device identity
    if (x === '#' && y === '#') break;
    if (x === '#') {
      for (const rest of b.slice(i)) {
        if (rest === undefined) return undefined;
        if (rest === '#') break;
        out.push(concrete(rest));
      }
      break;
    }
    if (y === '#') {
      for (const rest of a.slice(i)) {
        if (rest === '#') break;
        out.push(concrete(rest));
      }
      break;
    }
    if (x === undefined || y === undefined) {
      if (x === y) break;
      return undefined;
    }
    if (x === '+' || y === '+') out.push(x === '+' ? concrete(y) : x);
    else if (x === y) out.push(x);
    else return undefined;
  }
  // MQTT: wildcards at the first level never match $-topics.
  const first = out[0] ?? '';
  if (first.startsWith('$') && (a[0] === '+' || a[0] === '#' || b[0] === '+' || b[0] === '#')) return undefined;
  return out.join('/');
}

/** Is there a topic matched by both the subscription filter and the rule filter? */
export function filtersOverlap(filter: string, ruleFilter: string, device: string | undefined): boolean {
  if (device === undefined && ruleFilter.split('/').includes(DEVICE_PLACEHOLDER)) return false;
  const a = filter.split('/');
  const b = ruleFilter.split('/');
  const dollar = filter.charCodeAt(0) === 36 || ruleFilter.charCodeAt(0) === 36;
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') {
      if (dollar && i === 0) return x === y;
      return true;
    }
    if (x === undefined || y === undefined) return x === y;
    const yLevel = y === DEVICE_PLACEHOLDER ? device : y;
    if (yLevel === undefined) return false; // {device} with no device identity
    if (x === '+' || yLevel === '+') {
      if (dollar && i === 0 && x !== yLevel) return false;
      continue;
    }
    if (x !== yLevel) return false;
  }
}

/** The distinct thresholds in `rules`, ascending: a score change matters only when it crosses one of them. */
export function policyThresholds(rules: readonly PolicyRule[]): number[] {
  const out = new Set<number>();
  for (const r of rules) {
    if (r.publish !== undefined) out.add(r.publish);
    if (r.subscribe !== undefined) out.add(r.subscribe);
  }
  return [...out].sort((a, b) => a - b);
}
