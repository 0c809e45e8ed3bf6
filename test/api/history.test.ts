/**
 * A device's score history over the API: the store keeps a row per change of score (the periodic republish of an
 * unchanged score adds none), and the history the API answers ends with the current score, so that it reaches the
 * present for a device that has been steady for days. A real gateway, a real mTLS device, curl-free (node:https).
 */
import t from 'tap';
import { loadModel } from '../../scoring/index.js';
import { topics } from '../../protocol/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { api, operatorCredentials } from './helpers.js';

t.test('the history has a row per change and ends with the current score', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  // Every score republished every 300 ms (the tick runs every 100 ms).
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: 300, historyRetentionMs: 86_400_000, tickMs: 100 } });
  const device = await enroll(gw, tempDir(t), 'hist-1');
  const client = await connect(gw, device);
  t.teardown(() => client.end(true));
  await client.publishAsync(topics.telemetry('hist-1'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'hist-1', 1, Date.now())), { qos: 1 });
  const viewer = await operatorCredentials(gw, 'viewer', 'hilda');
  const detail = async () => (await api(gw, 'GET', '/devices/hist-1', viewer)).json as { scoredAt: string; score: number; history: Array<{ time: string; score: number }> };
  const stored = async () => gw.scoring!.history('hist-1');

  await waitFor(() => (gw.scoring?.counters.published ?? 0) > 0, 'a score');
  let rows = await stored();
  for (let i = 0; i < 100 && !rows.some((r) => r.score >= 0.9); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    rows = await stored();
  }
  const hardened = rows.filter((r) => r.score >= 0.9).length;
  t.equal(hardened, 1, 'the hardened score is stored once');

  // Several republishes later: the same score, and no new row.
  const published = gw.scoring!.counters.published;
  await waitFor(() => gw.scoring!.counters.published >= published + 3, 'three more republishes');
  await gw.scoring!.persist();
  t.equal((await stored()).filter((r) => r.score >= 0.9).length, 1, 'republishing the same score stores no row');

  const d = await detail();
  const last = d.history.at(-1)!;
  t.equal(last.time, d.scoredAt, 'the history ends with the current score');
  t.ok(Date.parse(last.time) > rows.at(-1)!.time, 'which is newer than the last stored row');
  t.equal(last.score, (await stored()).at(-1)!.score, 'and is the same score');
  t.equal(d.history.length, (await stored()).length + 1, 'one point more than the store holds');
});
