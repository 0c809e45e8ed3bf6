/**
 * Trust Score policies as Mosquitto Dynamic Security ACLs. Pure: no I/O, no clock.
 *
 * How Mosquitto 2.0.11's Dynamic Security decides (plugins/dynamic-security/acl.c, checked against the real broker):
 * - publishClientSend (client → broker) and publishClientReceive (broker → client, checked on EVERY delivery,
 *   including retained messages and queued messages on reconnect): the role's ACLs of that type are walked in
 *   priority order, highest first; the first whose filter matches the topic decides (allow or deny). No match:
 *   defaultACLAccess, which we set to deny.
 * - subscribe: first an exact string match against the role's subscribeLiteral ACLs (regardless of priority), then
 *   the subscribePattern ACLs in priority order; a pattern applies when it CONTAINS the requested filter
 *   (`weather/#` contains `weather/+/temp`, but nothing except `#` contains `#`).
 * - unsubscribe: defaultACLAccess (we allow it; refusing an unsubscribe protects nothing).
 *
 * wott's PolicyEngine picks the most specific rule level by level from the left (literal > {device} > + > #). That
 * is a fixed total order on the rules, so giving each rule a priority that follows this order makes Mosquitto's
 * "first match by priority" pick exactly the rule PolicyEngine picks, for every concrete topic. `{device}` becomes
 * the device's literal id (one role per device). The namespace rules of broker/namespace.ts sit above all policy
 * rules: a device publishes its own telemetry and its own peer reports, reads its own score and events, and nothing
 * else in wott/; nobody but the admin role touches `$CONTROL/`.
 *
 * Subscriptions: Aedes grants a wildcard filter when some topic under it is readable and then checks each delivery.
 * Containment patterns cannot say "overlaps", so umbrella filters (`#`, `+/#`, `devices/#`, `devices/+/#`, ...: a
 * rule's prefixes + `#`, with any of their levels as `+`) whose Aedes decision differs from the pattern decision get
 * an explicit subscribeLiteral. Every delivery is still checked per topic by publishClientReceive, so a granted `#`
 * never delivers `payments/...` below 0.9. What remains different: a wildcard filter that merely overlaps a rule
 * and is no umbrella (`sensors/x/+` against `sensors/+/temp`, `devices/+/status` against `devices/{device}/#`) is
 * refused by Mosquitto where Aedes grants it — never the other way round for what gets delivered.
 */
import { namespaceSubscribe } from '../broker/namespace.js';
import { DEVICE_PLACEHOLDER, effectiveScore, filtersOverlap, PolicyEngine, policyThresholds, restrictedTopic, type PolicyRule } from '../policy/index.js';
import { assertDeviceId, deviceFilters, NAMESPACE, topicFilters, topics, type DeviceState, type ServiceRole } from '../protocol/index.js';

export const ACL_TYPES = [
  'publishClientSend',
  'publishClientReceive',
  'subscribeLiteral',
  'subscribePattern',
  'unsubscribeLiteral',
  'unsubscribePattern',
] as const;
export type AclType = (typeof ACL_TYPES)[number];

/** One Dynamic Security ACL, exactly as createRole/modifyRole take it and getRole/listRoles return it. */
export interface DynsecAcl {
  acltype: AclType;
  topic: string;
  priority: number;
  allow: boolean;
}

/** Mosquitto's own control topics (not wott topics): only the admin role may use them. */
export const CONTROL_ROOT = '$CONTROL';
export const CONTROL_ALL = `${CONTROL_ROOT}/#`;
export const DYNSEC_FILTER = `${CONTROL_ROOT}/dynamic-security/#`;
/** Mosquitto's `$` trees besides $CONTROL: broker statistics and shared subscriptions. */
const DOLLAR_ROOTS = ['$SYS', '$share'];

export const DEVICE_ROLE_PREFIX = 'wott-device-';
export const SERVICE_ROLE_PREFIX = 'wott-service-';
export const deviceRoleName = (device: string) => DEVICE_ROLE_PREFIX + assertDeviceId(device);
export const serviceRoleName = (role: ServiceRole) => SERVICE_ROLE_PREFIX + role;

// ------------------------------------------------------------------ Mosquitto's matching, for simulation and tests

/** mosquitto_topic_matches_sub(): does `filter` match the concrete `topic`? (`a/#` matches `a`; `+`/`#` at the first level never match `$` topics.) */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** sub_acl_check() from plugins/dynamic-security/sub_matches_sub.c: is the subscription filter `sub` contained in `acl`? */
export function aclContainsFilter(acl: string, sub: string): boolean {
  if (acl === '#') return true;
  let a = acl;
  let s = sub;
  const aHash = a === '#' || a.endsWith('/#');
  const sHash = s === '#' || s.endsWith('/#');
  if (aHash) a = a.length === 1 ? '' : a.slice(0, -2);
  if (sHash) s = s.length === 1 ? '' : s.slice(0, -2);
  if (sHash && !aHash) return false;
  const al = a.split('/');
  const sl = s.split('/');
  if (al.length > sl.length) return false;
  if (sl.length > al.length && !aHash) return false;
  for (let i = 0; i < sl.length; i++) {
    if (i < al.length && (al[i] === '+' || al[i] === sl[i])) continue;
    if (i >= al.length && aHash) continue;
    return false;
  }
  return true;
}

export type Access = 'publishClientSend' | 'publishClientReceive' | 'subscribe';

/** What Mosquitto's Dynamic Security decides for one role holding `acls` (defaultACLAccess deny). */
export function mosquittoDecides(acls: readonly DynsecAcl[], access: Access, topicOrFilter: string): boolean {
  const ordered = (type: AclType) => acls.filter((a) => a.acltype === type).sort((x, y) => y.priority - x.priority);
  if (access === 'subscribe') {
    const literal = acls.find((a) => a.acltype === 'subscribeLiteral' && a.topic === topicOrFilter);
    if (literal) return literal.allow;
    return ordered('subscribePattern').find((a) => aclContainsFilter(a.topic, topicOrFilter))?.allow ?? false;
  }
  return ordered(access).find((a) => topicMatchesFilter(a.topic, topicOrFilter))?.allow ?? false;
}

// ------------------------------------------------------------------ policy rules → ordered ACL entries

const levelRank = (level: string) => (level === '#' ? 3 : level === '+' ? 2 : level === DEVICE_PLACEHOLDER ? 1 : 0);

/**
 * PolicyEngine's precedence as a comparator: level by level from the left, literal < {device} < + < #, a rule that
 * ends (matching only topics of its own length) before one that continues. Rules that differ only in literal
 * values can never match the same topic, so ordering them by string is arbitrary but deterministic.
 */
export function comparePrecedence(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    if (i === x.length || i === y.length) return x.length - y.length;
    const r = levelRank(x[i]!) - levelRank(y[i]!);
    if (r) return r;
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
}

/** PolicyEngine merges rules with the same filter: the stricter threshold per action wins, a missing one denies. */
function mergeRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const byTopic = new Map<string, PolicyRule>();
  const strict = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : Math.max(x, y));
  for (const rule of rules) {
    const seen = byTopic.get(rule.topic);
    byTopic.set(rule.topic, seen ? { topic: rule.topic, publish: strict(seen.publish, rule.publish), subscribe: strict(seen.subscribe, rule.subscribe) } : rule);
  }
  return [...byTopic.values()];
}

const substitute = (filter: string, device: string) =>
  filter
    .split('/')
    .map((level) => (level === DEVICE_PLACEHOLDER ? device : level))
    .join('/');

/** How many thresholds `score` meets. Two scores in the same band get exactly the same ACLs. */
export function scoreBand(thresholds: readonly number[], score: number): number {
  let band = 0;
  for (const t of thresholds) if (score >= t) band++;
  return band;
}

/** The score ACLs are computed for: the one the Aedes plugin enforces (policy/effective-score.ts). */
export function aclScore(state: DeviceState | undefined, score: number | undefined, initialScore: number): number {
  return effectiveScore(score ?? initialScore, state);
}

type Entry = Omit<DynsecAcl, 'priority'>;

/**
 * Can one subscription filter be contained in both patterns? Unlike topic matching, Dynamic Security's containment
 * check lets `#` and a leading `+` contain `$SYS/...` and `$CONTROL/...` filters too, so no `$` rule here.
 */
function patternsOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    if (x[i] === '#' || y[i] === '#') return true;
    if (i === x.length || i === y.length) return x.length === y.length;
    if (x[i] !== '+' && y[i] !== '+' && x[i] !== y[i]) return false;
  }
}

/** Gives each ACL type its own descending, unique priorities in list order and drops denials nothing below overrides. */
function finish(entries: Entry[]): DynsecAcl[] {
  const out: DynsecAcl[] = [];
  for (const type of ACL_TYPES) {
    const seen = new Set<string>();
    // Within a type, Mosquitto keys ACLs by topic: keep only the first (highest-priority) entry per topic.
    let list = entries.filter((e) => e.acltype === type && !seen.has(e.topic) && seen.add(e.topic));
    if (type !== 'subscribeLiteral' && type !== 'unsubscribeLiteral') {
      // A denial only matters when some lower-priority allow could match the same topic; otherwise the default
      // (deny) gives the same answer. Keeps roles small: Mosquitto walks every ACL of a type on every message.
      const overlap = type === 'subscribePattern' ? patternsOverlap : (a: string, b: string) => filtersOverlap(a, b, undefined);
      list = list.filter((e, i) => e.allow || list.slice(i + 1).some((lower) => lower.allow && overlap(e.topic, lower.topic)));
    } else {
      list = list.filter((e) => e.allow || type === 'subscribeLiteral');
    }
    list.forEach((e, i) => out.push({ ...e, priority: type === 'subscribeLiteral' ? 0 : list.length - i }));
  }
  return out;
}

/** Stable text form of an ACL list, for comparing what Mosquitto holds with what we want. */
export function aclKey(acls: readonly DynsecAcl[]): string {
  return acls
    .map((a) => JSON.stringify([a.acltype, a.topic, a.priority, a.allow]))
    .sort()
    .join('\n');
}

export interface AclCompilerOptions {
  /** Cap on umbrella subscription filters generated per rule (2^levels grows fast). */
  maxVariantsPerPrefix?: number;
}

/**
 * Compiles policy rules once; then gives any device's role ACLs for a score. Rules whose filter lies entirely in
 * wott/ or $CONTROL/ are ignored: the namespace rules decide there, as in the Aedes plugin.
 */
export class DeviceAclCompiler {
  readonly rules: readonly PolicyRule[];
  readonly thresholds: readonly number[];
  private readonly ordered: PolicyRule[];
  private readonly engine: PolicyEngine;
  private readonly maxVariants: number;

  constructor(rules: readonly PolicyRule[], options: AclCompilerOptions = {}) {
    this.rules = rules;
    this.engine = new PolicyEngine(rules);
    this.thresholds = policyThresholds(rules);
    this.maxVariants = options.maxVariantsPerPrefix ?? 32;
    const first = (topic: string) => topic.split('/')[0];
    this.ordered = mergeRules(rules)
      .filter((r) => first(r.topic) !== NAMESPACE && first(r.topic) !== CONTROL_ROOT)
      .sort((a, b) => comparePrecedence(a.topic, b.topic));
  }

  band(score: number): number {
    return scoreBand(this.thresholds, score);
  }

  /** The Aedes plugin's subscribe decision for a device (namespace first, then the policy), the reference we mirror. */
  aedesSubscribe(device: string, score: number, filter: string): boolean {
    const ns = namespaceSubscribe({ kind: 'device', id: device, serial: '', notAfter: Infinity }, filter);
    if (ns.applies) return ns.allowed;
    return this.engine.decideSubscribe(filter, device, score).allowed;
  }

  /** The exact ACL list of `device`'s role at `score`. */
  acls(device: string, score: number): DynsecAcl[] {
    assertDeviceId(device);
    const entries: Entry[] = [];
    const send = (topic: string, allow: boolean) => entries.push({ acltype: 'publishClientSend', topic, allow });
    const receive = (topic: string, allow: boolean) => entries.push({ acltype: 'publishClientReceive', topic, allow });
    const pattern = (topic: string, allow: boolean) => entries.push({ acltype: 'subscribePattern', topic, allow });
    const literal = (topic: string, allow: boolean) => entries.push({ acltype: 'subscribeLiteral', topic, allow });

    // Never Mosquitto's control API (Dynamic Security accepts commands from anyone its ACLs let publish there).
    send(CONTROL_ALL, false);
    receive(CONTROL_ALL, false);
    pattern(CONTROL_ALL, false);
    // Identity-bound wott topics (broker/namespace.ts), independent of the score so a low score can recover.
    send(topics.reports(device, device), false); // reports are about another device
    send(topics.telemetry(device), true);
    send(deviceFilters.reportsBy(device), true);
    for (const own of [topics.scores(device), topics.events(device)]) {
      receive(own, true);
      literal(own, true);
    }
    send(topicFilters.protectedNamespace, false);
    receive(topicFilters.protectedNamespace, false);
    pattern(topicFilters.protectedNamespace, false);

    // Policy rules, most specific first; {device} becomes this device's id. When a {device} rule turns into a
    // filter a literal rule already has, the literal one came first and shadows it completely (as in PolicyEngine).
    let dollarFenced = false;
    for (const rule of this.ordered) {
      const topic = substitute(rule.topic, device);
      if (!dollarFenced && /^[+#]/.test(topic)) {
        // Rules starting with a wildcard come last. Topic matching never lets them match `$` topics, but the
        // subscription containment check does (`#` contains `$SYS/x`): fence the `$` trees off for subscriptions.
        for (const root of DOLLAR_ROOTS) pattern(`${root}/#`, false);
        dollarFenced = true;
      }
      send(topic, rule.publish !== undefined && score >= rule.publish);
      const read = rule.subscribe !== undefined && score >= rule.subscribe;
      receive(topic, read);
      pattern(topic, read);
    }

    // Umbrella subscriptions: where the containment patterns disagree with the Aedes decision, say it literally.
    const draft = finish(entries);
    for (const filter of this.umbrellas(device)) {
      const wanted = this.aedesSubscribe(device, score, filter);
      if (wanted !== mosquittoDecides(draft, 'subscribe', filter)) literal(filter, wanted);
    }
    return finish(entries);
  }

  /**
   * The role of a quarantined or unclaimed device, as the Aedes plugin isolates it whatever the rules say: it may
   * publish its own telemetry and read its own score, nothing else. (Mosquitto cannot rate-limit that telemetry.)
   */
  restrictedAcls(device: string): DynsecAcl[] {
    assertDeviceId(device);
    const telemetry = restrictedTopic(device, 'publish');
    const score = restrictedTopic(device, 'subscribe');
    return finish([
      { acltype: 'publishClientSend', topic: telemetry, allow: true },
      { acltype: 'publishClientReceive', topic: score, allow: true },
      { acltype: 'subscribeLiteral', topic: score, allow: true },
    ]);
  }

  /** Filters broader than or beside the rules that devices commonly subscribe to: `#`, `+/#`, prefixes + `#`, `+` variants. */
  private umbrellas(device: string): string[] {
    const out = new Set<string>(['#', '+/#']);
    for (const rule of this.ordered) {
      const levels = substitute(rule.topic, device).split('/');
      const hash = levels[levels.length - 1] === '#';
      const body = hash ? levels.slice(0, -1) : levels;
      for (let k = 0; k <= body.length; k++) {
        for (const variant of this.plusVariants(body.slice(0, k))) {
          if (k < body.length || hash) out.add([...variant, '#'].join('/'));
          if (k === body.length && k > 0) out.add(variant.join('/'));
        }
      }
    }
    return [...out];
  }

  /** Every way of replacing literal levels of `prefix` with `+` (or just none/all when there are too many). */
  private plusVariants(prefix: string[]): string[][] {
    const literalAt = prefix.flatMap((level, i) => (level === '+' ? [] : [i]));
    if (2 ** literalAt.length > this.maxVariants) return [prefix, prefix.map(() => '+')];
    const out: string[][] = [];
    for (let mask = 0; mask < 2 ** literalAt.length; mask++) {
      const v = [...prefix];
      literalAt.forEach((at, bit) => {
        if (mask & (1 << bit)) v[at] = '+';
      });
      out.push(v);
    }
    return out;
  }
}

// ------------------------------------------------------------------ service roles

/**
 * Roles for service identities (certificate CN `{role}:{name}` becomes the username), mirroring broker/namespace.ts
 * and the plugin: scoring publishes scores, a broker identity publishes behaviour events, both read the wott/ tree;
 * admin reads everything and drives Dynamic Security ($CONTROL/dynamic-security/#) — the sync is an admin identity.
 */
export function serviceRoleAcls(role: ServiceRole): DynsecAcl[] {
  const entries: Entry[] = [];
  const readAll = (filter: string) => {
    entries.push({ acltype: 'subscribePattern', topic: filter, allow: true }, { acltype: 'publishClientReceive', topic: filter, allow: true });
  };
  switch (role) {
    case 'scoring':
      entries.push({ acltype: 'publishClientSend', topic: topicFilters.scores, allow: true }, { acltype: 'publishClientSend', topic: topicFilters.lateral, allow: true });
      readAll(topicFilters.protectedNamespace);
      break;
    case 'broker':
      entries.push({ acltype: 'publishClientSend', topic: topicFilters.events, allow: true });
      readAll(topicFilters.protectedNamespace);
      break;
    case 'admin':
      entries.push({ acltype: 'publishClientSend', topic: DYNSEC_FILTER, allow: true });
      readAll(DYNSEC_FILTER);
      readAll('#'); // `#` never matches $-topics, hence the explicit $CONTROL grant above
      break;
  }
  return finish(entries);
}
