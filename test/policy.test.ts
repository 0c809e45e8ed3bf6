import t from 'tap';
import type { PeerCertificate } from 'node:tls';
import { PolicyEngine, filterProblem, filtersOverlap, witnessTopic, policyRuleSchema, type PolicyRule } from '../policy/index.js';
import { namespaceForward, namespacePublish, namespaceSubscribe } from '../broker/namespace.js';
import { identityFromCertificate, type Identity } from '../broker/identity.js';
import { parseConfig, ConfigError } from '../cli/config.js';

// ---------------------------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------------------------

const layered: PolicyRule[] = [
  { topic: '#', publish: 0.1, subscribe: 0.1 },
  { topic: 'a/#', publish: 0.5, subscribe: 0.5 },
  { topic: 'a/+/c', publish: 0.6, subscribe: 0.6 },
  { topic: 'a/b/c', publish: 0.9, subscribe: 0.9 },
  { topic: 'devices/{device}/#', publish: 0, subscribe: 0 },
];

t.test('the most specific rule wins, level by level', async (t) => {
  const engine = new PolicyEngine(layered);
  const cases: Array<[topic: string, device: string | undefined, expected: string]> = [
    ['a/b/c', 'dev1', 'a/b/c'], // literal beats +
    ['a/x/c', 'dev1', 'a/+/c'], // + beats #
    ['a/b/d', 'dev1', 'a/#'], // a/b/c and a/+/c do not match; a/# beats #
    ['a/b/c/d', 'dev1', 'a/#'], // longer than a/b/c
    ['a/b', 'dev1', 'a/#'],
    ['a', 'dev1', 'a/#'], // a/# also matches its parent
    ['b', 'dev1', '#'],
    ['b/c/d', 'dev1', '#'],
    ['devices/dev1/x', 'dev1', 'devices/{device}/#'],
    ['devices/dev1', 'dev1', 'devices/{device}/#'],
    ['devices/dev1/x/y', 'dev1', 'devices/{device}/#'],
    ['devices/dev2/x', 'dev1', '#'], // {device} binds only the caller's own id
    ['devices/dev1/x', undefined, '#'], // no device identity: {device} never matches
  ];
  for (const [topic, device, expected] of cases) {
    t.equal(engine.match(topic, device)?.topic, expected, `${topic} as ${device ?? '(no device)'} -> ${expected}`);
  }
});

t.test('literal beats {device} beats + beats #', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'x/#', publish: 0.1 },
    { topic: 'x/+/y', publish: 0.2 },
    { topic: 'x/{device}/y', publish: 0.3 },
    { topic: 'x/dev1/y', publish: 0.4 },
  ]);
  t.equal(engine.match('x/dev1/y', 'dev1')?.topic, 'x/dev1/y', 'literal first');
  t.equal(engine.match('x/dev2/y', 'dev2')?.topic, 'x/{device}/y', '{device} before +');
  t.equal(engine.match('x/dev2/y', 'dev1')?.topic, 'x/+/y', '{device} of someone else: + decides');
  t.equal(engine.match('x/dev2/y', undefined)?.topic, 'x/+/y');
  t.equal(engine.match('x/dev2/z', 'dev2')?.topic, 'x/#', 'deeper levels fail: fall back to #');
  t.equal(engine.decide('x/dev2/y', 'publish', 'dev2', 0.3).allowed, true);
  t.equal(engine.decide('x/dev2/y', 'publish', 'dev1', 0.2).allowed, true);
  t.equal(engine.decide('x/dev2/y', 'publish', 'dev1', 0.19).allowed, false);
});

t.test('the leftmost level decides precedence, and the walk backtracks', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'a/+/c', publish: 0.6 },
    { topic: '+/b/c', publish: 0.3 },
    { topic: 'a/b/x', publish: 0.2 },
  ]);
  // a/+/c is more specific at level one than +/b/c, although +/b/c has a literal at level two.
  t.equal(engine.match('a/b/c', 'd')?.topic, 'a/+/c');
  // a/b/... leads nowhere for a/b/y; nothing else matches either.
  t.equal(engine.match('a/b/y', 'd'), undefined);
  t.equal(engine.match('z/b/c', 'd')?.topic, '+/b/c');
  t.equal(engine.match('a/b/x', 'd')?.topic, 'a/b/x');

  const backtrack = new PolicyEngine([
    { topic: 'a/b/c', publish: 0.9 },
    { topic: 'a/+/d', publish: 0.4 },
  ]);
  t.equal(backtrack.match('a/b/d', 'd')?.topic, 'a/+/d', 'literal a/b leads to a dead end, + branch is tried');
});

t.test('a `#` rule matches the parent level, `+` does not match an absent level', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'a/#', publish: 0.5 },
    { topic: 'p/+', publish: 0.5 },
  ]);
  t.equal(engine.match('a', 'd')?.topic, 'a/#');
  t.equal(engine.match('a/x/y/z', 'd')?.topic, 'a/#');
  t.equal(engine.match('p/q', 'd')?.topic, 'p/+');
  t.equal(engine.match('p', 'd'), undefined, 'p/+ does not match p');
  t.equal(engine.match('p/q/r', 'd'), undefined, 'p/+ does not match p/q/r');
  t.equal(engine.match('ab', 'd'), undefined, 'no prefix matching on level text');
});

t.test('$-topics are not matched by wildcards at the first level', async (t) => {
  const wild = new PolicyEngine([
    { topic: '#', publish: 0.1, subscribe: 0.1 },
    { topic: '+/uptime', publish: 0.1, subscribe: 0.1 },
  ]);
  t.equal(wild.match('$SYS/uptime', 'dev1'), undefined, '+/uptime does not match $SYS/uptime');
  t.equal(wild.match('$SYS/broker/x', 'dev1'), undefined, '# does not match $SYS/...');
  t.equal(wild.match('$SYS', 'dev1'), undefined);
  t.equal(wild.decide('$SYS/uptime', 'subscribe', 'dev1', 1).allowed, false);
  t.equal(wild.match('sys/uptime', 'dev1')?.topic, '+/uptime', 'ordinary topic still matched');
  t.equal(wild.match('x/$SYS', 'dev1')?.topic, '#', '$ beyond the first level is ordinary');

  const explicit = new PolicyEngine([
    { topic: '#', subscribe: 0.1 },
    { topic: '$SYS/#', subscribe: 0.7 },
    { topic: '$SYS/+/load', subscribe: 0.3 },
  ]);
  t.equal(explicit.match('$SYS/broker/uptime', 'dev1')?.topic, '$SYS/#');
  t.equal(explicit.match('$SYS', 'dev1')?.topic, '$SYS/#');
  t.equal(explicit.match('$SYS/broker/load', 'dev1')?.topic, '$SYS/+/load', 'wildcards below the first level work');
  t.equal(explicit.decide('$SYS/broker/uptime', 'subscribe', 'dev1', 0.7).allowed, true);
  t.equal(explicit.decide('$SYS/broker/uptime', 'subscribe', 'dev1', 0.69).allowed, false);
});

t.test('duplicate filters merge to the stricter threshold', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'a/b', publish: 0.3, subscribe: 0.8 },
    { topic: 'a/b', publish: 0.6, subscribe: 0.2 },
    { topic: 'h/#', publish: 0.2, subscribe: 0.2 },
    { topic: 'h/#', publish: 0.4, subscribe: 0.1 },
  ]);
  const merged = engine.match('a/b', 'd');
  t.equal(merged?.publish, 0.6);
  t.equal(merged?.subscribe, 0.8);
  t.equal(engine.decide('a/b', 'publish', 'd', 0.5).allowed, false, '0.5 is below the stricter 0.6');
  t.equal(engine.decide('a/b', 'publish', 'd', 0.6).allowed, true);
  t.equal(engine.decide('a/b', 'subscribe', 'd', 0.7).allowed, false);
  const hash = engine.match('h/x', 'd');
  t.equal(hash?.publish, 0.4, '# rules merge too');
  t.equal(hash?.subscribe, 0.2);
  t.equal(engine.decide('h/x', 'publish', 'd', 0.3).allowed, false);
  t.same(engine.rules.length, 4, 'the original rules are kept as given');
});

t.test('a rule missing an action denies that action, even when merged', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'ro/#', subscribe: 0 },
    { topic: 'm', publish: 0.1, subscribe: 0.1 },
    { topic: 'm', subscribe: 0.2 },
  ]);
  const ro = engine.decide('ro/x', 'publish', 'd', 1);
  t.equal(ro.allowed, false);
  t.equal(ro.rule?.topic, 'ro/#');
  t.equal(ro.threshold, undefined);
  t.match(ro.reason, /ro\/#/);
  t.match(ro.reason, /does not allow publish/);
  t.equal(engine.decide('ro/x', 'subscribe', 'd', 0).allowed, true);

  const m = engine.decide('m', 'publish', 'd', 1);
  t.equal(m.allowed, false, 'the merged rule lost publish: denial beats any number');
  t.match(m.reason, /does not allow publish/);
  const ms = engine.decide('m', 'subscribe', 'd', 0.2);
  t.equal(ms.allowed, true);
  t.equal(ms.threshold, 0.2);
  t.equal(engine.decide('m', 'subscribe', 'd', 0.15).allowed, false);
});

t.test('an unmatched topic is denied', async (t) => {
  const engine = new PolicyEngine([{ topic: 'a/b', publish: 0 }]);
  const d = engine.decide('c/d', 'publish', 'dev1', 1);
  t.equal(d.allowed, false);
  t.equal(d.rule, undefined);
  t.equal(d.threshold, undefined);
  t.equal(d.score, 1);
  t.match(d.reason, /unmatched/);
  t.match(d.reason, /c\/d/);
  const empty = new PolicyEngine([]);
  t.equal(empty.decide('anything', 'subscribe', 'dev1', 1).allowed, false, 'no rules: zero trust');
  t.match(empty.decide('anything', 'subscribe', 'dev1', 1).reason, /unmatched/);
});

t.test('threshold boundaries and reasons', async (t) => {
  const engine = new PolicyEngine(layered);
  const at = engine.decide('a/x/c', 'publish', 'dev1', 0.6);
  t.equal(at.allowed, true, 'exactly the threshold is enough');
  t.equal(at.threshold, 0.6);
  t.equal(at.score, 0.6);
  t.equal(at.rule?.topic, 'a/+/c');
  t.match(at.reason, /a\/\+\/c/);
  t.match(at.reason, /0\.6/);
  t.match(at.reason, /meets/);

  const below = engine.decide('a/x/c', 'publish', 'dev1', 0.5999);
  t.equal(below.allowed, false);
  t.equal(below.threshold, 0.6);
  t.match(below.reason, /a\/\+\/c/);
  t.match(below.reason, /needs 0\.6/);
  t.match(below.reason, /below/);

  t.equal(engine.decide('a/b/c', 'subscribe', 'dev1', 0.89).allowed, false, 'a/b/c asks 0.9 despite a/# 0.5');
  t.equal(engine.decide('a/b/c', 'subscribe', 'dev1', 0.9).allowed, true);
  t.equal(engine.decide('zzz', 'publish', 'dev1', 0.1).allowed, true, '# at 0.1');
  t.equal(engine.decide('zzz', 'publish', 'dev1', 0.09).allowed, false);
  t.equal(engine.decide('devices/dev1/t', 'publish', 'dev1', 0).allowed, true, 'own devices/ subtree at score 0');
  t.equal(engine.decide('devices/dev2/t', 'publish', 'dev1', 0.05).allowed, false, "someone else's subtree falls to #");
});

// ---------------------------------------------------------------------------------------------------------------
// decideSubscribe and filtersOverlap
// ---------------------------------------------------------------------------------------------------------------

t.test('decideSubscribe: a concrete filter is decided like a topic', async (t) => {
  const engine = new PolicyEngine(layered);
  for (const [filter, score] of [
    ['a/b/c', 0.9],
    ['a/b/c', 0.89],
    ['a/x/c', 0.6],
    ['a/x/c', 0.59],
    ['q', 0.1],
    ['q', 0.05],
    ['devices/dev1/x', 0],
  ] as const) {
    const sub = engine.decideSubscribe(filter, 'dev1', score);
    const topic = engine.decide(filter, 'subscribe', 'dev1', score);
    t.same(sub, topic, `${filter} at ${score}`);
  }
  t.equal(engine.decideSubscribe('a/b/c', 'dev1', 0.89).allowed, false);
  const none = new PolicyEngine([{ topic: 'a', subscribe: 0 }]).decideSubscribe('b', 'dev1', 1);
  t.equal(none.allowed, false);
  t.match(none.reason, /unmatched/);
});

t.test('decideSubscribe: wildcard filters are granted when some overlapping rule allows the score', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'weather/#', subscribe: 0.4 },
    { topic: 'payments/#', subscribe: 0.9 },
  ]);
  const granted = engine.decideSubscribe('#', 'dev1', 0.5);
  t.equal(granted.allowed, true);
  t.equal(granted.rule?.topic, 'weather/#');
  t.equal(granted.threshold, 0.4);
  t.match(granted.reason, /weather\/#/);
  t.match(granted.reason, /each delivery is checked per topic/);

  const low = engine.decideSubscribe('#', 'dev1', 0.3);
  t.equal(low.allowed, false);
  t.equal(low.rule, undefined);
  t.match(low.reason, /no topic under "#"/);
  t.match(low.reason, /0\.3/);

  t.equal(engine.decideSubscribe('payments/#', 'dev1', 0.5).allowed, false, 'payments needs 0.9');
  t.equal(engine.decideSubscribe('payments/+', 'dev1', 0.5).allowed, false);
  t.equal(engine.decideSubscribe('payments/#', 'dev1', 0.9).allowed, true);
  t.equal(engine.decideSubscribe('weather/+/temp', 'dev1', 0.4).allowed, true);

  const high = engine.decideSubscribe('#', 'dev1', 0.95);
  t.equal(high.allowed, true);
  t.equal(high.rule?.topic, 'weather/#', 'the first rule with a receivable topic under the filter is reported');
  t.equal(high.threshold, 0.4);
});

t.test('decideSubscribe: more specific rules and merged duplicates override, as for deliveries', async (t) => {
  const broad = new PolicyEngine([
    { topic: '#', subscribe: 0.1 },
    { topic: 'payments/#', subscribe: 0.9 },
  ]);
  t.equal(broad.decideSubscribe('payments/#', 'dev1', 0.5).allowed, false, '# at 0.1 does not open payments/#');
  t.equal(broad.decideSubscribe('payments/+', 'dev1', 0.5).allowed, false);
  t.equal(broad.decideSubscribe('#', 'dev1', 0.5).allowed, true, 'other topics remain receivable');
  const dup = new PolicyEngine([
    { topic: 'x/#', subscribe: 0.2 },
    { topic: 'x/#', subscribe: 0.8 },
  ]);
  t.equal(dup.decideSubscribe('x/+', 'dev1', 0.5).allowed, false, 'duplicates merge to the stricter threshold');
  const pubOnly = new PolicyEngine([
    { topic: 'y/#', subscribe: 0.2 },
    { topic: 'y/#', publish: 0.2 },
  ]);
  t.equal(pubOnly.decideSubscribe('y/+', 'dev1', 0.5).allowed, false, 'a merged rule without subscribe denies');
  const own = new PolicyEngine([{ topic: 'devices/{device}/#', subscribe: 0 }]);
  t.equal(own.decideSubscribe('devices/#', undefined, 1).allowed, false, 'no identity: {device} rules open nothing');
  t.equal(own.decideSubscribe('devices/+/led', 'dev1', 0).allowed, true);
  t.equal(own.decideSubscribe('devices/dev2/#', 'dev1', 1).allowed, false);
  t.equal(filtersOverlap('#', '{device}/#', undefined), false);
  t.equal(filtersOverlap('a/#', 'a/{device}', undefined), false);
  t.equal(witnessTopic('+/b', 'a/+', 'd'), 'a/b');
  t.equal(witnessTopic('a/#', 'a/b/+', 'd'), 'a/b/\u0000');
  t.equal(witnessTopic('a/b', 'a/c', 'd'), undefined);
  t.equal(witnessTopic('#', '$SYS/#', 'd'), undefined, '$-topics are not reached by a first-level wildcard');
  t.equal(witnessTopic('$SYS/+', '$SYS/#', 'd'), '$SYS/\u0000');
});

t.test('decideSubscribe: + filters overlap by level', async (t) => {
  const engine = new PolicyEngine([
    { topic: 'a/x', subscribe: 0.5 },
    { topic: 'b/y', subscribe: 0.1 },
    { topic: 'c/x/z', subscribe: 0.1 },
    { topic: 'pub/#', publish: 0 },
    { topic: 'devices/{device}/x', subscribe: 0.2 },
  ]);
  t.equal(engine.decideSubscribe('+/x', 'dev1', 0.5).allowed, true, 'a/x');
  t.equal(engine.decideSubscribe('+/x', 'dev1', 0.4).allowed, false, 'b/y is another second level; c/x/z is deeper');
  t.equal(engine.decideSubscribe('+/+', 'dev1', 0.1).rule?.topic, 'b/y');
  t.equal(engine.decideSubscribe('+/x/+', 'dev1', 0.1).rule?.topic, 'c/x/z');
  t.equal(engine.decideSubscribe('pub/+', 'dev1', 1).allowed, false, 'a publish-only rule grants no subscription');
  t.equal(engine.decideSubscribe('devices/+/x', 'dev1', 0.2).allowed, true, 'own {device}');
  t.equal(engine.decideSubscribe('devices/dev2/+', 'dev1', 1).allowed, false, "someone else's {device}");
  t.equal(engine.decideSubscribe('devices/dev1/+', 'dev1', 0.2).allowed, true);
  t.equal(engine.decideSubscribe('devices/dev1/+', 'dev1', 0.19).allowed, false);
});

t.test('filtersOverlap', async (t) => {
  const cases: Array<[filter: string, rule: string, device: string | undefined, expected: boolean]> = [
    ['#', '#', 'd', true],
    ['#', 'a/b/c', 'd', true],
    ['a/b/c', '#', 'd', true],
    ['a/#', 'a', 'd', true], // a/# matches a
    ['a', 'a/#', 'd', true],
    ['a/#', 'b/#', 'd', false],
    ['a/#', 'a/b/c/d', 'd', true],
    ['a/b/#', 'a/+', 'd', true],
    ['+', 'a', 'd', true],
    ['a', '+', 'd', true],
    ['+', '+', 'd', true],
    ['+', 'a/b', 'd', false], // different lengths
    ['a/b', '+', 'd', false],
    ['a/+', 'a', 'd', false],
    ['a', 'a/+', 'd', false],
    ['a/b', 'a/b/c', 'd', false],
    ['a/b/c', 'a/b', 'd', false],
    ['+/x', 'a/x', 'd', true],
    ['+/x', 'a/y', 'd', false],
    ['+/x', 'a/x/z', 'd', false],
    ['+/+/c', 'a/+/c', 'd', true],
    ['a/b', 'a/b', 'd', true],
    ['a/b', 'a/c', 'd', false],
    // {device} in the rule is the caller's own id
    ['devices/dev1/x', 'devices/{device}/x', 'dev1', true],
    ['devices/dev2/x', 'devices/{device}/x', 'dev1', false],
    ['devices/+/x', 'devices/{device}/x', 'dev1', true],
    ['devices/+/x', 'devices/{device}/x', undefined, false],
    ['devices/dev1/x', 'devices/{device}/x', undefined, false],
    ['devices/+/#', 'devices/{device}/x', 'dev1', true],
    // $-topics: wildcards at the first level never match them
    ['#', '$SYS/#', 'd', false],
    ['+/x', '$SYS/x', 'd', false],
    ['$SYS/x', '+/x', 'd', false],
    ['$SYS/#', '#', 'd', false],
    ['$SYS/#', '+/#', 'd', false],
    ['$SYS/#', '$SYS/#', 'd', true],
    ['$SYS/+', '$SYS/x', 'd', true],
    ['$SYS/x', '$SYS/+', 'd', true],
    ['$SYS/#', '$SYS/a/b', 'd', true],
    ['$SYS/x', '$OTHER/x', 'd', false],
  ];
  for (const [filter, rule, device, expected] of cases) {
    t.equal(filtersOverlap(filter, rule, device), expected, `${filter} ~ ${rule} (${device ?? 'no device'}) -> ${expected}`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Validation of rules
// ---------------------------------------------------------------------------------------------------------------

t.test('filterProblem', async (t) => {
  for (const ok of ['#', '+', 'a', 'a/b/c', 'a/#', '+/+/#', 'devices/{device}/#', '{device}', '$SYS/#', 'a//b', '/a']) {
    t.equal(filterProblem(ok), undefined, `${JSON.stringify(ok)} is fine`);
  }
  const bad: Array<[string, RegExp]> = [
    ['a/#/b', /'#' must be a whole level and the last one/],
    ['#/a', /'#'/],
    ['a#', /'#' must be a whole level/],
    ['a/b#', /'#'/],
    ['a+/b', /'\+' must be a whole level/],
    ['a/+b', /'\+'/],
    ['{dev}', /only \{device\} is supported/],
    ['x{device}', /only \{device\} is supported/],
    ['{device}x/y', /only \{device\}/],
    ['a/{device', /only \{device\}/],
    ['a/device}', /only \{device\}/],
    ['a/\0/b', /NUL/],
    ['a\0', /NUL/],
  ];
  for (const [filter, re] of bad) t.match(filterProblem(filter), re, JSON.stringify(filter));
});

t.test('policyRuleSchema rejects bad rules', async (t) => {
  const ok = policyRuleSchema.safeParse({ topic: 'a/+/c', publish: 0, subscribe: 1 });
  t.equal(ok.success, true);
  t.same(ok.data, { topic: 'a/+/c', publish: 0, subscribe: 1 });
  t.equal(policyRuleSchema.safeParse({ topic: 'a' }).success, true, 'no action at all is allowed (denies both)');

  const bad: Array<[unknown, RegExp, string]> = [
    [{ topic: 'a/#/b', publish: 0.5 }, /'#' must be a whole level/, 'topic'],
    [{ topic: 'a#', publish: 0.5 }, /'#'/, 'topic'],
    [{ topic: 'a+/b', publish: 0.5 }, /'\+' must be a whole level/, 'topic'],
    [{ topic: '{dev}', publish: 0.5 }, /\{device\}/, 'topic'],
    [{ topic: 'x{device}', publish: 0.5 }, /\{device\}/, 'topic'],
    [{ topic: 'a\0b', publish: 0.5 }, /NUL/, 'topic'],
    [{ topic: 'a', publish: -0.1 }, /between 0 and 1/, 'publish'],
    [{ topic: 'a', publish: 1.5 }, /between 0 and 1/, 'publish'],
    [{ topic: 'a', subscribe: -0.1 }, /between 0 and 1/, 'subscribe'],
    [{ topic: 'a', subscribe: 1.5 }, /between 0 and 1/, 'subscribe'],
  ];
  for (const [rule, re, field] of bad) {
    const result = policyRuleSchema.safeParse(rule);
    t.equal(result.success, false, JSON.stringify(rule));
    const issue = result.error?.issues[0];
    t.match(issue?.message, re, JSON.stringify(rule));
    t.same(issue?.path, [field], `${JSON.stringify(rule)} names ${field}`);
  }

  const unknown = policyRuleSchema.safeParse({ topic: 'a', publish: 0.5, publsh: 0.5 });
  t.equal(unknown.success, false, 'unknown field');
  t.equal(unknown.error?.issues[0]?.code, 'unrecognized_keys');
  t.same((unknown.error?.issues[0] as { keys?: string[] } | undefined)?.keys, ['publsh']);

  t.equal(policyRuleSchema.safeParse({ topic: '', publish: 0.5 }).success, false, 'empty topic');
  t.equal(policyRuleSchema.safeParse({ publish: 0.5 }).success, false, 'missing topic');
  t.equal(policyRuleSchema.safeParse({ topic: 'a', publish: '0.5' }).success, false, 'threshold must be a number');
});

t.test('PolicyEngine refuses a bad filter', async (t) => {
  t.throws(() => new PolicyEngine([{ topic: 'a/#/b', publish: 0.5 }]), { message: /policy topic "a\/#\/b": '#' must be a whole level/ });
  t.throws(() => new PolicyEngine([{ topic: 'ok', publish: 0 }, { topic: 'x{device}', publish: 0 }]), { message: /x\{device\}/ });
  t.throws(() => new PolicyEngine([{ topic: 'a+', publish: 0 }]), { message: /'\+' must be a whole level/ });
  t.doesNotThrow(() => new PolicyEngine([{ topic: 'devices/{device}/#', publish: 0 }]));
});

// ---------------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------------

t.test('parseConfig reads policies', async (t) => {
  const config = parseConfig(
    [
      'policies:',
      '  - topic: "#"',
      '    subscribe: 0.1',
      '  - topic: payments/#',
      '    publish: 0.9',
      '    subscribe: 0.9',
      '  - topic: devices/{device}/#',
      '    publish: 0',
      '',
    ].join('\n'),
  );
  t.same(config.policies, [
    { topic: '#', subscribe: 0.1 },
    { topic: 'payments/#', publish: 0.9, subscribe: 0.9 },
    { topic: 'devices/{device}/#', publish: 0 },
  ]);
  const engine = new PolicyEngine(config.policies);
  t.equal(engine.decide('payments/x', 'publish', 'dev1', 0.89).allowed, false);
  t.equal(engine.decide('devices/dev1/x', 'publish', 'dev1', 0).allowed, true);
  t.same(parseConfig('').policies, [], 'default: no rules');
});

t.test('parseConfig policy errors name the field and the line', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['policies:', '  - topic: a', '    publish: 1.5'], /^wott\.yaml:3: policies\.0\.publish: a minimum score is between 0 and 1/],
    [
      ['policies:', '  - topic: a', '    publish: 0.5', '  - topic: b', '    subscribe: 0.2', '    publish: -0.1'],
      /^wott\.yaml:6: policies\.1\.publish: a minimum score is between 0 and 1/,
    ],
    [['scoring:', '  initialScore: 0.5', 'policies:', '  - topic: a/#/b', '    publish: 0.5'], /^wott\.yaml:4: policies\.0\.topic: '#' must be a whole level/],
    [['policies:', '  - topic: ok', '  - topic: "x{device}"'], /^wott\.yaml:3: policies\.1\.topic: only \{device\}/],
    [['policies:', '  - topic: a', '    publish: 0.5', '    publsh: 0.5'], /^wott\.yaml:4: policies\.0\.publsh: unknown field/],
    [['policies:', '  - topic: a', '  - topic: b', '    extra: 1'], /^wott\.yaml:4: policies\.1\.extra: unknown field/],
  ];
  for (const [lines, re] of cases) {
    t.throws(() => parseConfig(lines.join('\n') + '\n'), { name: 'ConfigError', message: re }, lines.join(' | '));
  }
  try {
    parseConfig('policies:\n  - topic: a\n    subscribe: 2\n', 'site.yaml');
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    t.match((err as Error).message, /^site\.yaml:3: policies\.0\.subscribe:/, 'the source name is used');
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Namespace
// ---------------------------------------------------------------------------------------------------------------

const dev1: Identity = { kind: 'device', id: 'dev1', serial: 'ab', notAfter: 0 };
const scoring: Identity = { kind: 'service', role: 'scoring', name: 'main', id: 'scoring:main', serial: '01', notAfter: 0 };
const broker: Identity = { kind: 'service', role: 'broker', name: 'main', id: 'broker:main', serial: '02', notAfter: 0 };
const admin: Identity = { kind: 'service', role: 'admin', name: 'ops', id: 'admin:ops', serial: '03', notAfter: 0 };

const allowedOf = (v: ReturnType<typeof namespacePublish>) => (v.applies ? v.allowed : 'n/a');

t.test('namespacePublish', async (t) => {
  const cases: Array<[Identity, string, boolean | 'n/a']> = [
    [dev1, 'wott/v1/telemetry/dev1', true],
    [dev1, 'wott/v1/telemetry/dev2', false],
    [dev1, 'wott/v1/reports/dev1/dev2', true],
    [dev1, 'wott/v1/reports/dev2/dev3', false], // as someone else
    [dev1, 'wott/v1/reports/dev2/dev1', false], // as someone else, about itself
    [dev1, 'wott/v1/reports/dev1/dev1', false], // about itself
    [dev1, 'wott/v1/scores/dev1', false],
    [dev1, 'wott/v1/scores/dev2', false],
    [dev1, 'wott/v1/events/dev1', false],
    [dev1, 'wott/v1/telemetry/dev1/extra', false],
    [dev1, 'wott/v1/other', false],
    [dev1, 'wott/x', false],
    [dev1, 'wott', false],
    [dev1, 'wott/v1/lateral/dev2', false], // a forged lateral-movement notice
    [dev1, 'wott/v1/lateral/dev1', false],
    [broker, 'wott/v1/lateral/dev1', false],
    [admin, 'wott/v1/lateral/dev1', false],
    [scoring, 'wott/v1/lateral/dev1', true],
    [scoring, 'wott/v1/scores/dev1', true],
    [scoring, 'wott/v1/events/dev1', false],
    [scoring, 'wott/v1/telemetry/dev1', false],
    [scoring, 'wott/v1/reports/dev1/dev2', false],
    [broker, 'wott/v1/events/dev1', true],
    [broker, 'wott/v1/scores/dev1', false],
    [broker, 'wott/v1/telemetry/dev1', false],
    [admin, 'wott/v1/scores/dev1', false],
    [admin, 'wott/v1/events/dev1', false],
    [admin, 'wott/v1/telemetry/dev1', false],
    [admin, 'wott/v1/reports/dev1/dev2', false],
    [scoring, 'wott/v1/other', false],
    [dev1, 'home/dev1/temp', 'n/a'],
    [dev1, 'wottx/a', 'n/a'],
    [scoring, 'weather/x', 'n/a'],
    [admin, 'a/wott/v1/scores/dev1', 'n/a'],
  ];
  for (const [who, topic, expected] of cases) {
    const verdict = namespacePublish(who, topic);
    t.equal(allowedOf(verdict), expected, `${who.id} publishes ${topic} -> ${expected}`);
    if (verdict.applies) t.type(verdict.reason, 'string');
  }
  t.same(namespacePublish(dev1, 'home/x'), { applies: false });
  const v = namespacePublish(dev1, 'wott/v1/telemetry/dev2');
  t.match(v.applies && v.reason, /dev1.*dev2/);
  const r = namespacePublish(dev1, 'wott/v1/reports/dev1/dev1');
  t.match(r.applies && r.reason, /only report as itself about another device/);
  const a = namespacePublish(admin, 'wott/v1/scores/dev1');
  t.match(a.applies && a.reason, /role admin may not publish scores/);
});

t.test('namespaceSubscribe', async (t) => {
  const cases: Array<[Identity, string, boolean | 'n/a']> = [
    [dev1, 'wott/v1/scores/dev1', true],
    [dev1, 'wott/v1/events/dev1', true],
    [dev1, 'wott/v1/lateral/dev1', false], // notices are for the gateways' fleet events
    [dev1, 'wott/v1/scores/dev2', false],
    [dev1, 'wott/v1/events/dev2', false],
    [dev1, 'wott/v1/telemetry/dev1', false],
    [dev1, 'wott/v1/reports/dev1/dev2', false],
    [dev1, 'wott/v1/scores/+', false],
    [dev1, 'wott/#', false],
    [dev1, 'wott/v1/#', false],
    [dev1, 'wott', false],
    [dev1, '#', 'n/a'], // policies decide; deliveries are filtered by namespaceForward
    [dev1, '+/v1/scores/dev2', 'n/a'],
    [dev1, 'weather/#', 'n/a'],
    [scoring, 'wott/v1/telemetry/+', true],
    [scoring, 'wott/#', true],
    [broker, 'wott/v1/scores/+', true],
    [admin, 'wott/v1/reports/+/+', true],
    [admin, '#', 'n/a'],
    [scoring, 'weather/#', 'n/a'],
  ];
  for (const [who, filter, expected] of cases) {
    t.equal(allowedOf(namespaceSubscribe(who, filter)), expected, `${who.id} subscribes ${filter} -> ${expected}`);
  }
});

t.test('namespaceForward', async (t) => {
  const cases: Array<[Identity, string, boolean | 'n/a']> = [
    [dev1, 'wott/v1/scores/dev1', true],
    [dev1, 'wott/v1/events/dev1', true],
    [dev1, 'wott/v1/lateral/dev1', false], // even about itself: they name its neighbours
    [dev1, 'wott/v1/scores/dev2', false],
    [dev1, 'wott/v1/events/dev2', false],
    [dev1, 'wott/v1/telemetry/dev1', false],
    [dev1, 'wott/v1/telemetry/dev2', false],
    [dev1, 'wott/v1/reports/dev2/dev1', false],
    [dev1, 'wott/v1/other', false],
    [dev1, 'weather/x', 'n/a'],
    [scoring, 'wott/v1/telemetry/dev2', true],
    [broker, 'wott/v1/reports/dev1/dev2', true],
    [admin, 'wott/v1/scores/dev1', true],
    [admin, 'weather/x', 'n/a'],
  ];
  for (const [who, topic, expected] of cases) {
    t.equal(allowedOf(namespaceForward(who, topic)), expected, `${who.id} receives ${topic} -> ${expected}`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------------------------

const VALID_TO = 'Jan  1 00:00:00 2030 GMT';
function cert(cn: string | string[] | undefined, san: string | undefined, serialNumber = '01'): PeerCertificate {
  return {
    subject: cn === undefined ? {} : { CN: cn },
    subjectaltname: san,
    serialNumber,
    valid_to: VALID_TO,
  } as unknown as PeerCertificate;
}

t.test('identityFromCertificate: devices', async (t) => {
  t.same(identityFromCertificate(cert('dev1', 'URI:urn:wott:device:dev1', '0A1B')), {
    kind: 'device',
    id: 'dev1',
    serial: '0a1b',
    notAfter: Date.UTC(2030, 0, 1),
  });
  t.match(
    identityFromCertificate(cert('dev1', 'DNS:dev1.local, URI:urn:wott:device:dev1, IP Address:10.0.0.2')),
    { kind: 'device', id: 'dev1' },
    'other SAN entries are ignored',
  );
  t.match(identityFromCertificate(cert('dev1', 'URI:urn:wott:device:dev2')), { error: /CN "dev1" does not match its SAN URI/ });
  t.match(identityFromCertificate(cert('dev1', undefined)), { error: /does not match its SAN URI/ }, 'no SAN');
  t.match(identityFromCertificate(cert('dev1', 'DNS:urn:wott:device:dev1')), { error: /does not match/ }, 'only URI entries count');
  t.match(identityFromCertificate(cert('dev1', 'URI:urn:wott:device:dev1, URI:urn:wott:device:dev2')), { error: /does not match its SAN URI/ }, 'two device URIs');
  t.match(identityFromCertificate(cert('dev1', 'URI:urn:wott:device:dev1, URI:urn:wott:device:dev1')), { error: /does not match/ }, 'the same URI twice is still two');
});

t.test('identityFromCertificate: services', async (t) => {
  t.same(identityFromCertificate(cert('scoring:main', 'URI:urn:wott:service:scoring:main', '00:FF')), {
    kind: 'service',
    role: 'scoring',
    name: 'main',
    id: 'scoring:main',
    serial: 'ff',
    notAfter: Date.UTC(2030, 0, 1),
  });
  t.match(identityFromCertificate(cert('broker:b1', 'URI:urn:wott:service:broker:b1')), { kind: 'service', role: 'broker', name: 'b1' });
  t.match(identityFromCertificate(cert('admin:main', 'URI:urn:wott:service:scoring:main')), { error: /neither a device id nor a service identity/ }, 'role mismatch');
  t.match(identityFromCertificate(cert('scoring:main', 'URI:urn:wott:service:scoring:other')), { error: /neither/ }, 'name mismatch');
  t.match(identityFromCertificate(cert('root:main', 'URI:urn:wott:service:root:main')), { error: /neither/ }, 'unknown role');
  t.match(identityFromCertificate(cert('scoring:main', 'URI:urn:wott:device:scoring')), { error: /neither/ });
  t.match(
    identityFromCertificate(cert('scoring:main', 'URI:urn:wott:service:scoring:main, URI:urn:wott:service:scoring:main')),
    { error: /neither/ },
    'two service URIs',
  );
});

t.test('identityFromCertificate: refused certificates', async (t) => {
  t.match(identityFromCertificate(cert('Some Device', 'URI:urn:wott:device:dev1')), { error: /CN "Some Device" is neither a device id nor a service identity/ });
  t.match(identityFromCertificate(cert(undefined, 'URI:urn:wott:device:dev1')), { error: /no single subject CN/ });
  t.match(identityFromCertificate(cert('', 'URI:urn:wott:device:dev1')), { error: /no single subject CN/ });
  t.match(identityFromCertificate(cert(['dev1', 'dev2'], 'URI:urn:wott:device:dev1')), { error: /no single subject CN/ }, 'several CNs');
  t.match(identityFromCertificate({ subjectaltname: 'URI:urn:wott:device:dev1', valid_to: VALID_TO } as unknown as PeerCertificate), { error: /no single subject CN/ }, 'no subject');
  const long = identityFromCertificate(cert('X'.repeat(200), undefined));
  t.ok('error' in long && long.error.length < 150, 'the CN in the message is cut short');
});

t.test('identityFromCertificate: serial normalisation', async (t) => {
  const serial = (s: string) => {
    const id = identityFromCertificate(cert('dev1', 'URI:urn:wott:device:dev1', s));
    return 'error' in id ? id.error : id.serial;
  };
  t.equal(serial('00AB:CD'), 'abcd');
  t.equal(serial('ABCD'), 'abcd');
  t.equal(serial('00:00:0A:BC'), '0abc', 'whole zero bytes are dropped, not a zero nibble');
  t.equal(serial('ab:cd:ef'), 'abcdef');
});
