import t from 'tap';
import {
  assertDeviceId,
  CRL_PATH,
  deviceUri,
  EST_PATHS,
  identityFromNames,
  isDeviceId,
  parseDeviceUri,
  parseServiceCommonName,
  parseServiceUri,
  serviceCommonName,
  serviceUri,
  topics,
  topicFilters,
  parseTopic,
  isProtocolTopic,
  parseMessage,
  parseBehaviourEvent,
  scoreMessageSchema,
  TPM_KEY_HEADER,
  TPM_SIGNATURE_HEADER,
} from '../protocol/index.js';

t.test('device ids follow the DESIGN rule', async (t) => {
  for (const ok of ['a', 'dev1', 'pi-4.kitchen_2', '0', 'a'.repeat(63)]) t.ok(isDeviceId(ok), ok);
  for (const bad of ['', 'A', '-dev', '.dev', '_x', 'a'.repeat(64), 'dev/1', 'dev+1', 'dev#', 'dév', 'a b', 'scoring:main', 42, null]) {
    t.notOk(isDeviceId(bad), String(bad));
  }
  t.throws(() => assertDeviceId('../etc'), /invalid device id/);
  t.throws(() => assertDeviceId(undefined), /invalid device id undefined/);
  t.equal(assertDeviceId('dev1'), 'dev1');
});

t.test('device and service URIs round-trip and do not collide', async (t) => {
  t.equal(deviceUri('dev1'), 'urn:wott:device:dev1');
  t.equal(parseDeviceUri('urn:wott:device:dev1'), 'dev1');
  t.equal(parseDeviceUri('urn:wott:device:BAD'), undefined);
  t.equal(parseDeviceUri('urn:wott:service:scoring:main'), undefined);
  t.equal(serviceCommonName('scoring', 'main'), 'scoring:main');
  t.notOk(isDeviceId(serviceCommonName('admin', 'ops')), 'a service CN is never a device id');
  t.same(parseServiceUri(serviceUri('scoring', 'main')), { role: 'scoring', name: 'main' });
  t.equal(parseServiceUri('urn:wott:service:root:main'), undefined);
  t.equal(parseServiceUri('urn:wott:service:scoring:main:extra'), undefined);
  t.equal(parseServiceUri('urn:wott:device:dev1'), undefined);
});

t.test('service common names and certificate names are parsed in one place', async (t) => {
  t.same(parseServiceCommonName('scoring:main'), { role: 'scoring', name: 'main' });
  for (const bad of ['dev1', 'root:main', 'scoring:', 'scoring:BAD', 'scoring:main:extra', ':main']) t.equal(parseServiceCommonName(bad), undefined, bad);
  t.same(identityFromNames('dev1', ['urn:wott:device:dev1']), { kind: 'device', id: 'dev1' });
  t.same(identityFromNames('admin:ops', ['urn:wott:service:admin:ops']), { kind: 'service', role: 'admin', name: 'ops', id: 'admin:ops' });
  t.match(identityFromNames('dev1', ['urn:wott:device:dev2']), { error: /does not match its SAN URI/ });
  t.match(identityFromNames('dev1', ['urn:wott:device:dev1', 'urn:wott:device:dev1']), { error: /does not match/ });
  t.match(identityFromNames('admin:ops', ['urn:wott:service:scoring:ops']), { error: /neither a device id nor a service identity/ });
  t.match(identityFromNames('admin:ops', []), { error: /neither/ });
});

t.test('EST paths and TPM headers are the wire values agents and the CA agree on', async (t) => {
  t.same(EST_PATHS, {
    cacerts: '/.well-known/est/cacerts',
    csrattrs: '/.well-known/est/csrattrs',
    simpleenroll: '/.well-known/est/simpleenroll',
    simplereenroll: '/.well-known/est/simplereenroll',
  });
  t.equal(CRL_PATH, '/crl');
  t.equal(TPM_KEY_HEADER, 'x-wott-tpm-key');
  t.equal(TPM_SIGNATURE_HEADER, 'x-wott-tpm-signature');
});

t.test('topics are built and parsed in one place', async (t) => {
  t.equal(topics.telemetry('dev1'), 'wott/v1/telemetry/dev1');
  t.equal(topics.events('dev1'), 'wott/v1/events/dev1');
  t.equal(topics.scores('dev1'), 'wott/v1/scores/dev1');
  t.equal(topics.reports('a', 'b'), 'wott/v1/reports/a/b');
  t.throws(() => topics.telemetry('+'), /invalid device id/, 'wildcards cannot be smuggled in as ids');
  t.throws(() => topics.scores('a/b'), /invalid device id/);
  t.same(parseTopic('wott/v1/telemetry/dev1'), { kind: 'telemetry', device: 'dev1' });
  t.same(parseTopic('wott/v1/reports/a/b'), { kind: 'reports', reporter: 'a', subject: 'b' });
  for (const bad of ['wott/v1/telemetry', 'wott/v1/telemetry/dev1/x', 'wott/v1/telemetry/+', 'wott/v1/other/dev1', 'weather/x', 'wott/v2/scores/a', 'wott/v1/reports/a']) {
    t.equal(parseTopic(bad), undefined, bad);
  }
  t.ok(isProtocolTopic(topicFilters.scores));
  t.ok(isProtocolTopic('wott'));
  t.notOk(isProtocolTopic('wottx/a'));
});

t.test('score messages are validated with clear errors', async (t) => {
  const good = { device: 'dev1', score: 0.7, factors: [{ id: 'firewall', contribution: -0.1, reason: 'no firewall', fix: 'enable nftables' }], modelVersion: '1', time: new Date().toISOString() };
  t.same(parseMessage(scoreMessageSchema, JSON.stringify(good)), good);
  t.throws(() => parseMessage(scoreMessageSchema, '{'), /not valid JSON/);
  t.throws(() => parseMessage(scoreMessageSchema, JSON.stringify({ ...good, score: 1.5 })), /invalid message: score/);
  t.throws(() => parseMessage(scoreMessageSchema, JSON.stringify({ ...good, device: 'BAD' })), /device/);
  t.throws(() => parseMessage(scoreMessageSchema, Buffer.alloc(3 * 1024 * 1024, 32)), /too large/);
  t.throws(() => parseMessage(scoreMessageSchema, 'null'), /invalid message: \(root\)/);
});

t.test('a behaviour event payload is parsed once for all in-process subscribers; refusals are not remembered', async (t) => {
  const payload = Buffer.from(JSON.stringify({ device: 'dev-1', type: 'counters', time: new Date().toISOString(), verified: true, counters: { intervalMs: 10_000, messagesIn: 1, bytesIn: 2, messagesOut: 3, bytesOut: 4, publishDenied: 0, subscribeDenied: 0, suppressedEvents: 0 } }));
  const first = parseBehaviourEvent(payload);
  t.equal(parseBehaviourEvent(payload), first, 'the same Buffer: the same parsed event');
  t.not(parseBehaviourEvent(Buffer.from(payload)), first, 'an equal but other Buffer is parsed on its own');
  t.ok(Object.isFrozen(first) && Object.isFrozen(first.counters), 'frozen, since several subscribers keep it');
  t.throws(() => ((first as { device: string }).device = 'dev-2'), TypeError, 'no subscriber can change what another sees');
  const hostile = Buffer.from(JSON.stringify({ device: '../etc', type: 'connect', time: 'x', verified: true }));
  for (let i = 0; i < 2; i++) t.throws(() => parseBehaviourEvent(hostile), /invalid message/, `a bad event is refused every time (${i + 1})`);
  t.throws(() => parseBehaviourEvent(Buffer.from('{"device":')), /not valid JSON/);
  t.equal(parseBehaviourEvent(payload.toString()).device, 'dev-1', 'a string payload is parsed too');
});
