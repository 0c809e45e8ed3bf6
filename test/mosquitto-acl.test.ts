/**
 * Trust Score policies → Mosquitto Dynamic Security ACLs (pure). The reference is the Aedes plugin's own decision
 * (broker/namespace.ts + PolicyEngine); the Mosquitto side is a simulation of plugins/dynamic-security/acl.c and
 * sub_matches_sub.c, which test/mosquitto.test.ts checks against the real broker.
 */
import t from 'tap';
import { namespaceForward, namespacePublish } from '../broker/namespace.js';
import { policyThresholds, PolicyEngine, type PolicyRule } from '../policy/index.js';
import {
  ACL_TYPES,
  aclContainsFilter,
  aclKey,
  aclScore,
  comparePrecedence,
  DeviceAclCompiler,
  mosquittoDecides,
  scoreBand,
  serviceRoleAcls,
  topicMatchesFilter,
  type DynsecAcl,
} from '../mosquitto-compat/acl.js';
import { initialDynsecConfig, mosquittoConf } from '../mosquitto-compat/config.js';
import { topicFilters, topics } from '../protocol/index.js';

const POLICIES: PolicyRule[] = [
  { topic: 'weather/#', publish: 0.4, subscribe: 0.4 },
  { topic: 'payments/#', publish: 0.9, subscribe: 0.9 },
  { topic: 'devices/{device}/#', publish: 0, subscribe: 0 },
];

const device = (id: string) => ({ kind: 'device' as const, id, serial: '', notAfter: Infinity });

/** What the Aedes plugin decides for a device at a score (no CA ceilings: those are applied to the score first). */
function aedes(engine: PolicyEngine, id: string, score: number) {
  return {
    publish(topic: string) {
      const ns = namespacePublish(device(id), topic);
      return ns.applies ? ns.allowed : engine.allows(topic, 'publish', id, score);
    },
    receive(topic: string) {
      const ns = namespaceForward(device(id), topic);
      return ns.applies ? ns.allowed : engine.allows(topic, 'subscribe', id, score);
    },
  };
}

t.test("Mosquitto's topic matching (mosquitto_topic_matches_sub)", async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['weather/#', 'weather', true], // a/# matches a
    ['weather/#', 'weather/x/y', true],
    ['weather/+', 'weather/x', true],
    ['weather/+', 'weather/x/y', false],
    ['weather/+', 'weather', false],
    ['#', '$SYS/x', false], // wildcards at the first level never match $ topics
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['+/+', 'a/', true],
  ];
  for (const [filter, topic, expected] of cases) t.equal(topicMatchesFilter(filter, topic), expected, `${filter} ~ ${topic}`);
});

t.test("Dynamic Security's subscription containment (sub_acl_check)", async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['#', '#', true],
    ['#', 'anything/+/#', true],
    ['weather/#', 'weather/+/temp', true],
    ['weather/#', 'weather/#', true],
    ['weather/#', 'weather', true],
    ['weather/#', '#', false],
    ['weather/+', 'weather/#', false],
    ['weather/+', 'weather/x', true],
    ['weather/x', 'weather/+', false], // a literal level never contains a wildcard
    ['+/#', 'payments/x', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/c/d', false],
  ];
  for (const [acl, sub, expected] of cases) t.equal(aclContainsFilter(acl, sub), expected, `${acl} ⊇ ${sub}`);
});

t.test('precedence order is PolicyEngine order: literal < {device} < + < #, a rule ending here before one continuing', async (t) => {
  const sorted = ['#', 'a/#', '+/b', 'a/b', '{device}/x', 'a', 'a/+/#', 'a/{device}'].sort(comparePrecedence);
  t.same(sorted, ['a', 'a/b', 'a/{device}', 'a/+/#', 'a/#', '{device}/x', '+/b', '#']);
});

t.test('the mapping decides every concrete topic exactly like the Aedes plugin', async (t) => {
  const ruleSets: Array<[string, PolicyRule[]]> = [
    ['example', POLICIES],
    [
      'specificity',
      [
        { topic: '#', publish: 0.8, subscribe: 0.8 },
        { topic: 'public/#', publish: 0.1, subscribe: 0.1 },
        { topic: 'payments/#', publish: 0.9, subscribe: 0.95 },
        { topic: 'payments/+/refund', publish: 0.99 },
        { topic: '+/status', publish: 0.2, subscribe: 0.3 },
        { topic: 'devices/{device}/#', publish: 0, subscribe: 0 },
        { topic: 'devices/d1/secret', subscribe: 0.7 }, // a literal id shadows {device} for d1
        { topic: 'devices/+/shared', subscribe: 0.5 },
        { topic: 'weather', publish: 0.3, subscribe: 0.3 },
        { topic: 'weather', publish: 0.5 }, // duplicate filter: the stricter one counts, a missing threshold denies
        { topic: '$SYS/#', subscribe: 0.6 },
        { topic: topicFilters.telemetry, publish: 0 }, // ignored: the namespace rules decide in wott/
        { topic: '+/v1/#', publish: 0.1, subscribe: 0.1 }, // overlaps wott/v1/...: namespace denials must win
      ],
    ],
    [
      'wildcards only',
      [
        { topic: '#', publish: 0.2, subscribe: 0.2 }, // `#` contains `$SYS/...` filters in Dynamic Security's check
        { topic: '+/+/#', publish: 0.6 },
        { topic: '+', subscribe: 0.9 },
      ],
    ],
  ];
  const levels = ['weather', 'payments', 'public', 'devices', 'status', 'refund', 'shared', 'secret', 'x', 'd1', 'd2', 'v1', 'wott', 'telemetry', 'reports', 'scores', 'events'];
  const universe = new Set<string>([
    topics.telemetry('d1'),
    topics.telemetry('d2'),
    topics.reports('d1', 'd2'),
    topics.reports('d1', 'd1'),
    topics.reports('d2', 'd1'),
    topics.scores('d1'),
    topics.scores('d2'),
    topics.events('d1'),
    topics.events('d2'),
    'wott',
    '$SYS/broker/uptime',
    '$CONTROL/dynamic-security/v1',
    '$CONTROL/dynamic-security/v1/response',
    '$share/g/weather',
    'weather',
  ]);
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), (seed >>> 8) % n);
  while (universe.size < 2500) {
    const n = 1 + rand(4);
    universe.add(Array.from({ length: n }, () => levels[rand(levels.length)]!).join('/'));
  }
  for (const [name, rules] of ruleSets) {
    const engine = new PolicyEngine(rules);
    const compiler = new DeviceAclCompiler(rules);
    let checked = 0;
    const mismatches: string[] = [];
    for (const id of ['d1', 'd2']) {
      for (const score of [0, 0.15, 0.35, 0.5, 0.75, 0.92, 0.97, 1]) {
        const acls = compiler.acls(id, score);
        const ref = aedes(engine, id, score);
        for (const topic of universe) {
          const pub = mosquittoDecides(acls, 'publishClientSend', topic);
          const recv = mosquittoDecides(acls, 'publishClientReceive', topic);
          if (pub !== ref.publish(topic)) mismatches.push(`${id}@${score} publish ${topic}: mosquitto ${pub}, aedes ${!pub}`);
          if (recv !== ref.receive(topic)) mismatches.push(`${id}@${score} receive ${topic}: mosquitto ${recv}, aedes ${!recv}`);
          // A concrete filter is a topic: subscribe is decided by the same rules.
          const sub = mosquittoDecides(acls, 'subscribe', topic);
          if (sub !== compiler.aedesSubscribe(id, score, topic)) mismatches.push(`${id}@${score} subscribe ${topic}: mosquitto ${sub}`);
          checked += 3;
        }
      }
    }
    t.same(mismatches.slice(0, 10), [], `${name}: ${checked} decisions, ${mismatches.length} differ`);
  }
});

t.test("a '#' subscription is granted, but deliveries below a topic's threshold are not", async (t) => {
  const compiler = new DeviceAclCompiler(POLICIES);
  const low = compiler.acls('d1', 0.5);
  t.ok(mosquittoDecides(low, 'subscribe', '#'), '# is granted at 0.5 (weather/# is readable), like Aedes');
  t.ok(mosquittoDecides(low, 'publishClientReceive', 'weather/berlin'));
  t.notOk(mosquittoDecides(low, 'publishClientReceive', 'payments/card'), 'payments/... never delivered at 0.5');
  t.notOk(mosquittoDecides(low, 'publishClientReceive', topics.scores('d2')), "another device's score is private");
  t.ok(mosquittoDecides(low, 'publishClientReceive', topics.scores('d1')), 'its own score');
  t.notOk(mosquittoDecides(low, 'publishClientReceive', 'devices/d2/x'), "another device's {device} topics");
  t.notOk(mosquittoDecides(low, 'subscribe', 'payments/#'));
  t.notOk(mosquittoDecides(low, 'subscribe', topicFilters.scores), 'wott/v1/scores/+ is not for devices');
  t.ok(mosquittoDecides(low, 'subscribe', 'devices/+/#'), 'overlaps its own devices/d1/#: granted, deliveries filtered');
  t.notOk(mosquittoDecides(low, 'subscribe', '$CONTROL/dynamic-security/v1/response'));
  t.notOk(mosquittoDecides(compiler.acls('d1', 1), 'subscribe', '$SYS/#'));
  const high = compiler.acls('d1', 0.95);
  t.ok(mosquittoDecides(high, 'publishClientReceive', 'payments/card'));
  t.ok(mosquittoDecides(high, 'subscribe', 'payments/#'));
  const none = compiler.acls('d1', 0);
  t.ok(mosquittoDecides(none, 'subscribe', '#'), 'score 0 still reads devices/d1/# (threshold 0)');
  t.notOk(mosquittoDecides(none, 'publishClientReceive', 'weather/x'));
  t.ok(mosquittoDecides(none, 'publishClientSend', topics.telemetry('d1')), 'telemetry at any score, so a low score can recover');
  t.notOk(mosquittoDecides(none, 'publishClientSend', topics.telemetry('d2')));
  t.notOk(mosquittoDecides(high, 'publishClientSend', topics.scores('d1')), 'no device publishes a score');
  t.notOk(mosquittoDecides(high, 'publishClientSend', '$CONTROL/dynamic-security/v1'), 'no device drives Dynamic Security');
});

t.test('wildcard subscriptions: common filters are granted exactly when the Aedes plugin grants them', async (t) => {
  const rules: PolicyRule[] = [...POLICIES, { topic: 'weather/secret/#', subscribe: 0.95 }, { topic: 'sensors/+/temp', publish: 0.3, subscribe: 0.3 }];
  const compiler = new DeviceAclCompiler(rules);
  const filters = ['#', '+/#', '+', 'weather/#', 'weather/+/temp', 'weather/secret/#', 'payments/#', 'payments/+', 'devices/#', 'devices/+/#', 'devices/+', 'devices/d1/#', 'devices/d2/#', 'devices/d1/status', 'sensors/#', 'sensors/+/temp', '+/+/temp', 'other/#', topicFilters.protectedNamespace, topicFilters.scores, topics.scores('d1'), topics.events('d1'), topics.scores('d2')];
  for (const score of [0, 0.35, 0.5, 0.95]) {
    const acls = compiler.acls('d1', score);
    for (const f of filters) t.equal(mosquittoDecides(acls, 'subscribe', f), compiler.aedesSubscribe('d1', score, f), `d1@${score} subscribe ${f}`);
  }
  // Known difference: a wildcard filter that only overlaps a rule — a wildcard where the rule has a literal
  // (sensors/x/+ vs sensors/+/temp, devices/+/status vs devices/{device}/#) — and is none of the umbrella forms
  // cannot be expressed by containment: Mosquitto refuses the subscription that Aedes grants. The safe direction:
  // nothing is delivered that the policies forbid; subscribe to sensors/x/temp or devices/+/# instead.
  const acls = compiler.acls('d1', 0.5);
  for (const f of ['sensors/x/+', 'devices/+/status']) {
    t.ok(compiler.aedesSubscribe('d1', 0.5, f));
    t.notOk(mosquittoDecides(acls, 'subscribe', f), `${f} refused on Mosquitto (documented)`);
  }
  t.ok(mosquittoDecides(acls, 'subscribe', 'sensors/x/temp'));
  t.ok(mosquittoDecides(acls, 'subscribe', 'devices/+/#'));
});

t.test('ACLs change only when a threshold is crossed', async (t) => {
  const compiler = new DeviceAclCompiler(POLICIES);
  t.same(policyThresholds(POLICIES), [0, 0.4, 0.9]);
  t.same(compiler.thresholds, [0, 0.4, 0.9]);
  t.equal(scoreBand(compiler.thresholds, 0), 1);
  t.equal(scoreBand(compiler.thresholds, 0.39), 1);
  t.equal(scoreBand(compiler.thresholds, 0.4), 2);
  t.equal(scoreBand(compiler.thresholds, 0.95), 3);
  t.equal(aclKey(compiler.acls('d1', 0.5)), aclKey(compiler.acls('d1', 0.89)), 'same band, same ACLs');
  t.not(aclKey(compiler.acls('d1', 0.89)), aclKey(compiler.acls('d1', 0.9)), 'crossing 0.9 changes them');
  t.not(aclKey(compiler.acls('d1', 0.5)), aclKey(compiler.acls('d2', 0.5)), 'roles are per device ({device} and identity topics)');
  t.equal(aclScore('quarantined', 0.99, 0.5), 0, 'quarantine: ceiling 0');
  t.equal(aclScore('unclaimed', 0.99, 0.5), 0);
  t.equal(aclScore('active', undefined, 0.5), 0.5, 'no score yet: the initial score');
  t.equal(aclScore(undefined, 0.7, 0.5), 0.7);
});

t.test('well-formed roles: one ACL per type and topic, unique priorities, no useless denials', async (t) => {
  const compiler = new DeviceAclCompiler([...POLICIES, { topic: '#', publish: 0.2, subscribe: 0.2 }, { topic: 'devices/d1/#', publish: 0.99 }]);
  for (const score of [0, 0.5, 1]) {
    const acls = compiler.acls('d1', score);
    for (const type of ACL_TYPES) {
      const list = acls.filter((a) => a.acltype === type);
      t.equal(new Set(list.map((a) => a.topic)).size, list.length, `${type}: no duplicate topics`);
      if (type !== 'subscribeLiteral') t.equal(new Set(list.map((a) => a.priority)).size, list.length, `${type}: unique priorities`);
    }
    // With `#` allowed at 0.2, payments/# and wott/# must be explicit denials above it.
    if (score === 0.5) {
      const deny = (type: DynsecAcl['acltype'], topic: string) => acls.some((a) => a.acltype === type && a.topic === topic && !a.allow);
      t.ok(deny('publishClientSend', 'payments/#'));
      t.ok(deny('publishClientReceive', topicFilters.protectedNamespace));
      t.notOk(mosquittoDecides(acls, 'publishClientReceive', topics.telemetry('d2')));
      t.ok(mosquittoDecides(acls, 'publishClientReceive', 'anything/else'));
    }
  }
  // The literal devices/d1/# rule (0.99 to publish) shadows devices/{device}/# for d1 only.
  t.notOk(mosquittoDecides(compiler.acls('d1', 0.5), 'publishClientSend', 'devices/d1/x'));
  t.ok(mosquittoDecides(compiler.acls('d2', 0.5), 'publishClientSend', 'devices/d2/x'));
});

t.test('service roles mirror broker/namespace.ts', async (t) => {
  const scoring = serviceRoleAcls('scoring');
  t.ok(mosquittoDecides(scoring, 'publishClientSend', topics.scores('d1')));
  t.notOk(mosquittoDecides(scoring, 'publishClientSend', topics.telemetry('d1')));
  t.notOk(mosquittoDecides(scoring, 'publishClientSend', 'weather/x'));
  t.ok(mosquittoDecides(scoring, 'subscribe', topicFilters.telemetry));
  t.ok(mosquittoDecides(scoring, 'publishClientReceive', topics.reports('d1', 'd2')));
  t.notOk(mosquittoDecides(scoring, 'subscribe', '#'), 'only the admin role reads outside wott/');
  const broker = serviceRoleAcls('broker');
  t.ok(mosquittoDecides(broker, 'publishClientSend', topics.events('d1')));
  t.notOk(mosquittoDecides(broker, 'publishClientSend', topics.scores('d1')));
  const admin = serviceRoleAcls('admin');
  t.ok(mosquittoDecides(admin, 'publishClientSend', '$CONTROL/dynamic-security/v1'));
  t.ok(mosquittoDecides(admin, 'subscribe', '$CONTROL/dynamic-security/v1/response'));
  t.ok(mosquittoDecides(admin, 'publishClientReceive', '$CONTROL/dynamic-security/v1/response'));
  t.ok(mosquittoDecides(admin, 'subscribe', '#'));
  t.notOk(mosquittoDecides(admin, 'publishClientSend', topics.scores('d1')), 'admin publishes nothing in wott/');
  t.notOk(mosquittoDecides(admin, 'publishClientSend', 'weather/x'));
});

t.test('generated mosquitto.conf and initial Dynamic Security JSON', async (t) => {
  const conf = mosquittoConf({ dir: '/etc/wott-mosquitto', port: 8883, bind: '127.0.0.1', pluginPath: '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so', user: 'mosquitto' });
  for (const line of [
    'per_listener_settings false',
    'allow_anonymous false',
    'listener 8883 127.0.0.1',
    'cafile /etc/wott-mosquitto/ca.crt',
    'certfile /etc/wott-mosquitto/server.crt',
    'keyfile /etc/wott-mosquitto/server.key',
    'crlfile /etc/wott-mosquitto/crl.pem',
    'require_certificate true',
    'use_identity_as_username true',
    'use_username_as_clientid true',
    'tls_version tlsv1.2',
    'plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
    'plugin_opt_config_file /etc/wott-mosquitto/dynamic-security.json',
    'persistence true',
    'persistence_location /etc/wott-mosquitto/persistence/',
    'pid_file /etc/wott-mosquitto/mosquitto.pid',
    'user mosquitto',
  ]) {
    t.ok(conf.split('\n').includes(line), line);
  }
  t.ok(conf.indexOf('plugin ') < conf.indexOf('listener '), 'global plugin before the listener');
  t.match(mosquittoConf({ dir: '/x', port: 1884, pluginPath: '/p.so' }), /^listener 1884$/m, 'all addresses without --bind');
  t.throws(() => mosquittoConf({ dir: '/x\nlistener 1883', port: 8883, pluginPath: '/p.so' }), /cannot be used/, 'no line injection');
  t.throws(() => mosquittoConf({ dir: '/x', port: 70000, pluginPath: '/p.so' }), /invalid port/);

  const json = initialDynsecConfig([
    { role: 'admin', name: 'sync' },
    { role: 'scoring', name: 's1' },
    { role: 'admin', name: 'sync' },
  ]);
  t.same(json.defaultACLAccess, { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true });
  t.same(
    json.clients.map((c) => [c.username, c.roles.map((r) => r.rolename)]),
    [
      ['admin:sync', ['wott-service-admin']],
      ['scoring:s1', ['wott-service-scoring']],
    ],
  );
  t.same(
    json.roles.map((r) => r.rolename),
    ['wott-service-admin', 'wott-service-scoring', 'wott-service-broker'],
  );
  t.notOk(json.clients.some((c) => 'password' in c), 'no passwords: certificates only');
});
