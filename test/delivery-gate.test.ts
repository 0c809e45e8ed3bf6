import t from 'tap';
import { DeliveryGate, GATE_TOPIC_LIMIT, ScoreCache, type GateSource } from '../broker/delivery-gate.js';
import { PolicyEngine } from '../policy/index.js';
import type { DeviceState } from '../protocol/index.js';

function source(states: Map<string, DeviceState>) {
  const scores = new ScoreCache();
  const trust = { stateVersion: 0, deviceState: (id: string) => states.get(id) };
  const src: GateSource = { generation: 0, policy: new PolicyEngine([{ topic: 'weather/#', subscribe: 0.4 }, { topic: 'fleet/{device}/#', subscribe: 0.2 }]), scores, initialScore: 0.5, trust };
  return { src, scores, trust };
}

t.test('the score is read live on every delivery', async (t) => {
  const { src, scores } = source(new Map());
  const gate = new DeliveryGate({ kind: 'device', id: 'd1', serial: '', notAfter: Infinity }, src);
  t.equal(gate.allows('weather/x'), true, 'initial score 0.5 meets 0.4');
  scores.set('d1', 0.3);
  t.equal(gate.allows('weather/x'), false, 'a score drop applies to the next delivery');
  t.equal(gate.allows('fleet/d1/cpu'), true, '{device} rule for its own id');
  t.equal(gate.allows('fleet/d2/cpu'), false, "another device's {device} topic");
  t.equal(gate.allows('other/x'), false, 'unmatched topics are denied');
  scores.set('d1', 0.45);
  t.equal(gate.allows('weather/x'), true, 'a rise applies to the next delivery too');
  scores.delete('d1');
  t.equal(gate.allows('weather/x'), true, 'a forgotten score: the initial score again');
  scores.set('d1', 0.1);
  scores.clear();
  t.equal(gate.allows('weather/x'), true, 'a cleared cache: the initial score again');
  const version = scores.version;
  scores.set('d2', 0.9);
  t.ok(scores.version > version, "any write moves the cache's version");
});

t.test('a state change applies at once through the state version; a reload through the generation', async (t) => {
  const states = new Map<string, DeviceState>();
  const { src, trust } = source(states);
  const gate = new DeliveryGate({ kind: 'device', id: 'd1', serial: '', notAfter: Infinity }, src);
  t.equal(gate.allows('weather/x'), true);
  states.set('d1', 'quarantined');
  t.equal(gate.allows('weather/x'), true, 'cached until the version moves (sources move it with the change)');
  trust.stateVersion++;
  t.equal(gate.allows('weather/x'), false, 'quarantined: restricted');
  t.equal(gate.allows('wott/v1/scores/d1'), true, 'its own score topic still');
  states.set('d1', 'active');
  trust.stateVersion++;
  t.equal(gate.allows('weather/x'), true, 'released');
  src.policy = new PolicyEngine([{ topic: 'weather/#', subscribe: 0.9 }]);
  src.generation++;
  t.equal(gate.allows('weather/x'), false, 'the reloaded rule decides');
});

t.test('bounded per connection', async (t) => {
  const { src } = source(new Map());
  const gate = new DeliveryGate({ kind: 'device', id: 'd1', serial: '', notAfter: Infinity }, src);
  for (let i = 0; i < GATE_TOPIC_LIMIT * 3; i++) gate.allows(`weather/${i}`);
  t.ok(gate.size <= GATE_TOPIC_LIMIT);
});

t.test("publishAllowed: true exactly when policy alone allows a device's publish, following score, state and reloads", async (t) => {
  const states = new Map<string, DeviceState>();
  const scores = new ScoreCache();
  const trust = { stateVersion: 0, deviceState: (id: string) => states.get(id) };
  const rules = [
    { topic: 'weather/#', publish: 0.4, subscribe: 0.4 },
    { topic: 'payments/#', publish: 0.9 },
    { topic: 'fleet/{device}/#', publish: 0.2 },
    { topic: 'read/only', subscribe: 0.1 },
    { topic: 'wott/#', publish: 0 },
  ];
  const src: GateSource = { generation: 0, policy: new PolicyEngine(rules), scores, initialScore: 0.5, trust };
  const gate = new DeliveryGate({ kind: 'device', id: 'd1', serial: '', notAfter: Infinity }, src);
  const topicsTried = ['weather/x', 'payments/card', 'fleet/d1/cpu', 'fleet/d2/cpu', 'read/only', 'other/x', 'wott/v1/telemetry/d1', 'wott/v1/scores/d1', '$SYS/x'];
  const ceilings: Record<string, number> = { unclaimed: 0, quarantined: 0, revoked: 0 };
  let checked = 0;
  for (const score of [0, 0.1, 0.3, 0.45, 0.95, 1]) {
    scores.set('d1', score);
    for (const state of [undefined, 'active', 'quarantined', 'unclaimed', 'revoked'] as const) {
      if (state) states.set('d1', state);
      else states.delete('d1');
      trust.stateVersion++;
      for (const topic of topicsTried) {
        const capped = state && state in ceilings ? Math.min(score, ceilings[state]!) : score;
        const restricted = state === 'quarantined' || state === 'unclaimed' || state === 'revoked';
        const expected = !restricted && !topic.startsWith('wott/') && src.policy.allows(topic, 'publish', 'd1', capped);
        t.equal(gate.publishAllowed(topic), expected, `${topic} at ${score}, ${state ?? 'no state'}`);
        checked++;
      }
    }
  }
  t.ok(checked > 200);
  states.delete('d1');
  trust.stateVersion++;
  scores.set('d1', 0.5);
  t.equal(gate.publishAllowed('weather/x'), true);
  src.policy = new PolicyEngine([{ topic: 'weather/#', publish: 0.6 }]);
  src.generation++;
  t.equal(gate.publishAllowed('weather/x'), false, 'a reload applies at once');
  const service = new DeliveryGate({ kind: 'service', role: 'admin', name: 'ops', id: 'admin:ops', serial: '', notAfter: Infinity } as never, src);
  t.equal(service.publishAllowed('weather/x'), false, 'services take the full check');
});
