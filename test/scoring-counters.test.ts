/**
 * Per-node counters summed before the rate baseline (issue 16): in a cluster each broker node reports its own share
 * of a device's traffic per interval. Two node ids here: a device with sessions on both nodes, and one that moves
 * between them, must give the same baseline as one node seeing all of its traffic.
 */
import t from 'tap';
import { loadModel, ScoreEngine } from '../scoring/index.js';
import { counters } from './scoring-fixtures.js';

const model = loadModel();
const INTERVAL = 10_000;

function engine() {
  const clock = { now: Date.parse('2026-11-30T10:00:00Z') };
  return { e: new ScoreEngine({ model, now: () => clock.now }), clock };
}

/** A counters event as broker node `node` sends it. */
function fromNode(device: string, messagesIn: number, node?: string): string {
  const event = JSON.parse(counters(device, messagesIn, INTERVAL)) as Record<string, unknown>;
  return JSON.stringify(node ? { ...event, node } : event);
}

const rateFactor = (e: ScoreEngine, device: string) => e.compute(device).message.factors.find((f) => f.id === 'rateAnomaly');

t.test('one node (no node id): each counters event is one sample at once, as before', async (t) => {
  const { e, clock } = engine();
  for (let i = 0; i < 8; i++) {
    t.ok(e.ingestEvent('solo', fromNode('solo', 100)).accepted);
    clock.now += INTERVAL;
  }
  const base = e.record('solo').behaviour.baseline;
  t.equal(base.samples, 8);
  t.equal(base.rate, 10, '100 messages per 10 s');
  t.same(e.flushCounters(), [], 'nothing is held back');
});

t.test('sessions on two nodes at once: their counters are summed into one sample per interval', async (t) => {
  const { e, clock } = engine();
  for (let i = 0; i < 8; i++) {
    // The nodes' timers are not aligned: node-b reports 3 s after node-a, each its half of the traffic.
    e.ingestEvent('both', fromNode('both', 50, 'node-a'));
    clock.now += 3000;
    e.ingestEvent('both', fromNode('both', 50, 'node-b'));
    clock.now += INTERVAL - 3000;
    e.flushCounters();
  }
  const base = e.record('both').behaviour.baseline;
  t.equal(base.samples, 8, 'one sample per interval, not one per node');
  t.equal(base.rate, 10, 'the whole rate (10/s), not each node share (5/s)');
  t.notOk(rateFactor(e, 'both'), 'no anomaly');

  // The device now sends all of its usual traffic through node-a only: not an anomaly against a baseline of halves.
  for (let i = 0; i < 3; i++) {
    e.ingestEvent('both', fromNode('both', 100, 'node-a'));
    clock.now += INTERVAL;
    e.flushCounters();
  }
  t.equal(e.record('both').behaviour.baseline.rate, 10);
  t.notOk(rateFactor(e, 'both'), 'the same traffic on one node is the same rate');
});

t.test('a device moving from one node to another mid-interval: one sample with its whole traffic', async (t) => {
  const { e, clock } = engine();
  for (let i = 0; i < 8; i++) {
    const [first, second] = i % 2 === 0 ? ['node-a', 'node-b'] : ['node-b', 'node-a'];
    e.ingestEvent('mover', fromNode('mover', 30, first));
    clock.now += 6000;
    e.ingestEvent('mover', fromNode('mover', 70, second));
    clock.now += INTERVAL - 6000;
    t.same(e.flushCounters(), ['mover'], `interval ${i}: applied once its interval is over`);
  }
  const base = e.record('mover').behaviour.baseline;
  t.equal(base.samples, 8);
  t.equal(base.rate, 10);
});

t.test('a real burst spread over two nodes is still seen: anomalies are judged on the sum', async (t) => {
  const { e, clock } = engine();
  for (let i = 0; i < 8; i++) {
    e.ingestEvent('burst', fromNode('burst', 50, 'node-a'));
    e.ingestEvent('burst', fromNode('burst', 50, 'node-b'));
    clock.now += INTERVAL;
    e.flushCounters();
  }
  // 6× the baseline in all, but each node sees only 3×: the sum is anomalous.
  e.ingestEvent('burst', fromNode('burst', 300, 'node-a'));
  e.ingestEvent('burst', fromNode('burst', 300, 'node-b'));
  t.notOk(rateFactor(e, 'burst'), 'not applied before the interval is over');
  clock.now += INTERVAL;
  e.flushCounters();
  t.match(rateFactor(e, 'burst'), { reason: /baseline of 10/ });
});

t.test('a second event from the same node closes the window (its next interval)', async (t) => {
  const { e, clock } = engine();
  e.ingestEvent('again', fromNode('again', 100, 'node-a'));
  clock.now += 1000;
  e.ingestEvent('again', fromNode('again', 100, 'node-a'));
  t.equal(e.record('again').behaviour.baseline.samples, 1, 'the first window was applied alone');
  clock.now += INTERVAL;
  e.flushCounters();
  t.equal(e.record('again').behaviour.baseline.samples, 2);
});
