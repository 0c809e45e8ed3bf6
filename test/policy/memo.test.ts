/**
 * allows() answers through a memo (topic → governing rule, per device where a `{device}` rule lies on the path).
 * It must give exactly decide()'s answer for every topic, device and score, also while the memo starts over.
 */
import t from 'tap';
import { PolicyEngine, type PolicyRule } from '../../policy/index.js';

const rules: PolicyRule[] = [
  { topic: '#', subscribe: 0.8 },
  { topic: 'weather/#', publish: 0.4, subscribe: 0.4 },
  { topic: 'payments/#', publish: 0.9, subscribe: 0.9 },
  { topic: 'devices/{device}/#', publish: 0.1, subscribe: 0.1 },
  { topic: 'devices/+/status', subscribe: 0.5 },
  { topic: 'devices/admin/status', subscribe: 0.95 },
  { topic: 'site/+/{device}/cmd', publish: 0.3 },
  { topic: 'site/a/b/cmd', publish: 0.6 },
  { topic: '$SYS/#', subscribe: 1 },
];

function* cases(): Generator<{ topic: string; device: string | undefined; score: number }> {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff), seed % n);
  const levels = ['weather', 'payments', 'devices', 'site', 'a', 'b', 'dev-1', 'dev-2', 'admin', 'status', 'cmd', '$SYS', 'x'];
  const devices = ['dev-1', 'dev-2', 'admin', 'b', undefined];
  for (let i = 0; i < 20_000; i++) {
    const depth = 1 + rand(5);
    const topic = Array.from({ length: depth }, () => levels[rand(levels.length)]!).join('/');
    yield { topic, device: devices[rand(devices.length)], score: rand(101) / 100 };
  }
}

for (const limit of [65_536, 7]) {
  t.test(`allows() equals decide() for 20,000 generated questions (memo limit ${limit})`, async (t) => {
    const engine = new PolicyEngine(rules, limit);
    let mismatches = 0;
    let allowed = 0;
    let perDevice = 0;
    let largest = 0;
    for (const c of cases()) {
      for (const action of ['publish', 'subscribe'] as const) {
        const memoised = engine.allows(c.topic, action, c.device, c.score);
        const explained = engine.decide(c.topic, action, c.device, c.score).allowed;
        if (memoised !== explained) mismatches++;
        if (memoised) allowed++;
        // Ask again as another device: a {device} rule must not leak one device's answer to another.
        const other = c.device === 'dev-1' ? 'dev-2' : 'dev-1';
        if (engine.allows(c.topic, action, other, c.score) !== engine.decide(c.topic, action, other, c.score).allowed) (mismatches++, perDevice++);
      }
      largest = Math.max(largest, engine.memoSize);
    }
    t.ok(largest <= limit, `the memo stayed within its limit (largest ${largest})`);
    t.equal(mismatches, 0, 'no answer differs from decide()');
    t.equal(perDevice, 0, 'no device got another device\'s answer');
    t.ok(allowed > 1000, `the mix allows some (${allowed}) and denies the rest`);
  });
}

t.test('device-bound topics are answered per device', async (t) => {
  const engine = new PolicyEngine(rules);
  t.ok(engine.allows('devices/dev-1/temp', 'publish', 'dev-1', 0.2), 'its own topic at 0.2');
  t.notOk(engine.allows('devices/dev-1/temp', 'publish', 'dev-2', 0.2), 'the same topic for another device falls to # (no publish)');
  t.ok(engine.allows('devices/dev-1/temp', 'publish', 'dev-1', 0.2), 'and the first answer still holds for dev-1');
  t.notOk(engine.allows('devices/dev-1/temp', 'publish', undefined, 0.99), 'a caller without a device id never matches {device}');
});

t.test('a reload is a new engine: new rules apply at once', async (t) => {
  const before = new PolicyEngine(rules);
  t.ok(before.allows('weather/x', 'subscribe', 'dev-1', 0.5));
  const after = new PolicyEngine([{ topic: 'weather/#', subscribe: 0.6 }]);
  t.notOk(after.allows('weather/x', 'subscribe', 'dev-1', 0.5));
});

t.test('a flood of distinct topics never grows the memo past its limit', async (t) => {
  const engine = new PolicyEngine(rules, 1000);
  let max = 0;
  for (let i = 0; i < 50_000; i++) {
    engine.allows(`flood/${i}`, 'publish', 'dev-1', 1);
    engine.allows(`devices/dev-1/${i}`, 'publish', 'dev-1', 1);
    max = Math.max(max, engine.memoSize);
  }
  t.ok(max <= 1000, `largest memo ${max}`);
});
