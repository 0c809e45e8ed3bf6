/**
 * A gateway restart makes every device reconnect. That reconnect is the gateway's doing, so it must not count as
 * connection churn against the devices (with 10,000 devices, each restart would otherwise push a fleet toward the
 * churn allowance, and a few restarts in an hour over it). A real gateway is stopped and started again on the same
 * data; real devices connect over mutual TLS; the churn factor is read from the scores the gateway computes.
 */
import t from 'tap';
import { startGateway, type Gateway } from '../gateway/index.js';
import type { BehaviourEvent, ScoreMessage } from '../protocol/index.js';
import { loadModel } from '../scoring/index.js';
import { tempDir } from './helpers.js';
import { connect, enroll, eventWatcher, testGatewayOptions, waitFor, type Credentials } from './mqtt-helpers.js';

// No allowance, so that one counted connect shows; a day's half-life, so nothing decays within the test.
const model = loadModel({ behaviour: { halfLife: '24h', churn: { allowance: 0 } } });

async function gateway(dataDir: string): Promise<Gateway & { dir: string; caPem: string }> {
  const gw = await startGateway(testGatewayOptions(dataDir, { scoring: { model, republishMs: 3_600_000, historyRetentionMs: 86_400_000, tickMs: 200 } }));
  return Object.assign(gw, { dir: dataDir, caPem: gw.ca.caCertificates().map((c) => c.toString()).join('') });
}

/** Connects over mTLS, waits until the gateway has published the connect event, and leaves. */
async function connectOnce(gw: Gateway, creds: Credentials, events: BehaviourEvent[]): Promise<BehaviourEvent> {
  const before = events.length;
  const client = await connect(gw, creds);
  // The scorer in the gateway is subscribed in process: it has the event before this MQTT watcher does.
  await waitFor(() => events.slice(before).some((e) => e.device === creds.id && e.type === 'connect'), `the connect event of ${creds.id}`);
  await client.endAsync();
  await waitFor(() => gw.plugin.sessionsOf(creds.id).length === 0, `${creds.id} gone`);
  return events.slice(before).find((e) => e.device === creds.id && e.type === 'connect')!;
}

/** Connects above the allowance that the device's score counts now (0 when there is no churn factor). */
function churn(message: ScoreMessage | undefined): number {
  const factor = message?.factors.find((f) => f.id === 'churn');
  if (!factor) return 0;
  const m = /reconnecting often: ([0-9.]+) connects/.exec(factor.reason);
  if (!m) throw new Error(`churn reason not understood: ${factor.reason}`);
  return Number(m[1]);
}

t.test("a device's reconnect after a gateway restart is not churn; its other reconnects are", async (t) => {
  const dataDir = tempDir(t);
  let gw = await gateway(dataDir);
  let open = true;
  t.teardown(() => (open ? gw.close() : undefined));
  const dir = tempDir(t);
  const flaky = await enroll(gw, dir, 'flaky-1');
  const steady = await enroll(gw, dir, 'steady-1');
  let events = await eventWatcher(t, gw, dir);

  const first = await connectOnce(gw, flaky, events);
  t.equal(first.firstSinceStart, true, "the device's first session since the gateway started is marked");
  t.equal(churn(gw.scoring!.recompute('flaky-1', true)), 0, 'and not counted');
  const second = await connectOnce(gw, flaky, events);
  t.notOk(second.firstSinceStart, 'a second session is not marked');
  t.equal(churn(gw.scoring!.recompute('flaky-1', true)), 1, 'and counts as one connect');
  t.equal((await connectOnce(gw, steady, events)).firstSinceStart, true, "another device's first session is marked on its own");
  t.equal(churn(gw.scoring!.recompute('steady-1', true)), 0);

  // The restart: the same data, a new process' worth of broker and scorer.
  open = false;
  await gw.close();
  gw = await gateway(dataDir);
  open = true;
  events = await eventWatcher(t, gw, dir);
  t.equal(churn(gw.scoring!.recompute('flaky-1', true)), 1, 'the counted connect survived the restart (the scorer stores it)');
  const back = await connectOnce(gw, flaky, events);
  t.equal(back.firstSinceStart, true, 'the reconnect after the restart is marked');
  t.equal(churn(gw.scoring!.recompute('flaky-1', true)), 1, 'and adds no churn');
  t.equal((await connectOnce(gw, steady, events)).firstSinceStart, true);
  t.equal(churn(gw.scoring!.recompute('steady-1', true)), 0, 'a device that only came back after restarts has no churn at all');

  // A device that keeps reconnecting after the restart is still seen.
  for (let i = 0; i < 3; i++) t.notOk((await connectOnce(gw, flaky, events)).firstSinceStart);
  t.equal(churn(gw.scoring!.recompute('flaky-1', true)), 4, 'every later reconnect counts');
});
