/**
 * One effective score: `wott score show`, `wott score history`, `wott policy explain` and the live broker say the
 * same score for an active, a quarantined, an unclaimed and a revoked device — against a real gateway with scoring
 * inside it, the CLI in other processes. Before policy/effective-score.ts, `score show` of a device quarantined
 * after its last score printed that score (0.500) while the broker enforced 0.
 */
import t from 'tap';
import { topics } from '../protocol/index.js';
import { effectiveScore, enforcedScoreMessage, isRestricted, restrictedTopic, stateCeiling } from '../policy/index.js';
import { loadModel } from '../scoring/index.js';
import { claimEnroll } from './est-helpers.js';
import { CLI, requireCommand, tempDir, writeTemp } from './helpers.js';
import { connect, enroll, POLICIES, run, testGateway, waitFor } from './mqtt-helpers.js';
import { fixtureTelemetry } from './scoring-fixtures.js';

t.test('the state rules: ceilings and restrictions', async (t) => {
  for (const state of ['unclaimed', 'quarantined', 'revoked'] as const) {
    t.equal(effectiveScore(0.97, state), 0, `${state}: ceiling 0`);
    t.match(stateCeiling(state), { ceiling: 0, reason: `capped: the device is ${state}` });
  }
  t.equal(effectiveScore(0.97, 'active'), 0.97);
  t.equal(effectiveScore(0.4, undefined), 0.4, 'unknown to the CA: no ceiling (the trust source decides whether it connects)');
  t.same(['unclaimed', 'quarantined', 'revoked', 'active'].map((s) => isRestricted(s as 'active')), [true, true, false, false]);
  t.equal(restrictedTopic('d1', 'publish'), topics.telemetry('d1'));
  t.equal(restrictedTopic('d1', 'subscribe'), topics.scores('d1'));
  const message = { device: 'd1', score: 0.5, factors: [{ id: 'telemetry', contribution: -0.5, reason: 'none yet' }], modelVersion: 'm', time: '2026-11-30T00:00:00.000Z' };
  t.match(enforcedScoreMessage(message, 'quarantined'), { score: 0, factors: [{ id: 'telemetry' }, { id: 'ceiling:quarantined', contribution: -0.5, fix: /release/ }] });
  t.equal(enforcedScoreMessage(message, 'active'), message, 'active: unchanged');
  const capped = enforcedScoreMessage(message, 'revoked');
  t.equal(enforcedScoreMessage(capped, 'revoked'), capped, 'already capped: unchanged');
});

t.test('score show, score history, policy explain and the broker agree for active, quarantined, unclaimed and revoked devices', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const config = writeTemp(dir, 'wott.yaml', 'policies:\n' + POLICIES.map((p) => `  - topic: "${p.topic}"\n    publish: ${p.publish}\n    subscribe: ${p.subscribe}\n`).join(''));
  const gw = await testGateway(t, { claim: true, scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });

  const devices = { active: 'act-1', quarantined: 'quar-1', unclaimed: 'unc-1', revoked: 'rev-1' } as const;
  const clients: Array<Awaited<ReturnType<typeof connect>>> = [];
  for (const id of [devices.active, devices.quarantined, devices.revoked]) clients.push(await connect(gw, await enroll(gw, dir, id)));
  const unclaimed = await claimEnroll(gw, dir, devices.unclaimed);
  t.equal(unclaimed.reply.status, 200, 'claim mode: an unauthenticated enrollment');
  clients.push(await connect(gw, unclaimed.creds!));
  t.teardown(() => clients.forEach((c) => c.end(true)));
  t.equal(gw.plugin.deviceState(devices.unclaimed), 'unclaimed');
  await clients[0]!.publishAsync(topics.telemetry(devices.active), JSON.stringify(fixtureTelemetry('debian12-hardened', devices.active, 1, Date.now())), { qos: 1 });

  type Shown = { message: { score: number; factors: Array<{ id: string }> }; state?: string };
  const show = async (id: string): Promise<Shown | string> => {
    const r = await run('node', [CLI, 'score', 'show', id, '--json', '--data', gw.dir], 30_000);
    return r.code === 0 ? (JSON.parse(r.stdout) as Shown) : `score show ${id}: exit ${r.code}: ${r.stderr}`;
  };
  // Every device has a stored score (their connects are behaviour events), the active one from its telemetry.
  await waitFor(() => gw.plugin.effectiveScore(devices.active) >= 0.9, 'the hardened score in the broker');
  for (const id of Object.values(devices)) {
    let shown = await show(id);
    for (let i = 0; i < 100 && (typeof shown === 'string' || (id === devices.active && shown.message.score !== gw.plugin.effectiveScore(id))); i++) {
      await new Promise((r) => setTimeout(r, 200));
      shown = await show(id);
    }
    if (typeof shown === 'string') t.fail(shown);
    else if (id === devices.quarantined) t.equal(shown.message.score, 0.5, 'active, no telemetry yet: the prior');
  }

  // The state changes; scoring is not told (it learns when it next recomputes the device): the broker is at once.
  await gw.fleet.quarantine(devices.quarantined);
  await gw.ca.revoke({ deviceId: devices.revoked });
  await waitFor(() => gw.plugin.deviceState(devices.quarantined) === 'quarantined' && gw.plugin.deviceState(devices.revoked) === 'revoked', 'the broker to see the states');

  const explain = async (id: string) => {
    const args = ['policy', 'explain', '--device', id, '--topic', 'weather/x', '--action', 'publish', '--data', gw.dir, '--config', config, '--mqtt-port', String(gw.mqttPort), '--json'];
    return JSON.parse((await run('node', [CLI, ...args], 30_000)).stdout) as { state: string; score: number; allowed: boolean; scoreSource: string };
  };
  // One command at a time, as an operator would type them.
  const printed = [];
  for (const [state, id] of Object.entries(devices)) {
    const explained = await explain(id);
    const shown = await show(id);
    const text = (await run('node', [CLI, 'score', 'show', id, '--data', gw.dir], 30_000)).stdout;
    const history = (await run('node', [CLI, 'score', 'history', id, '--data', gw.dir], 30_000)).stdout.trim().split('\n');
    printed.push({ state, id, explained, text, history });
    if (typeof shown === 'string') {
      t.fail(shown);
      continue;
    }
    const broker = gw.plugin.effectiveScore(id);
    t.equal(shown.message.score, broker, `${state}: score show says what the broker enforces (${broker})`);
    t.equal(explained.score, broker, `${state}: policy explain too`);
    t.equal(shown.state, state, `${state}: score show names the state`);
    t.equal(explained.state, state);
    t.equal(explained.allowed, gw.plugin.explain(id, 'weather/x', 'publish').allowed, `${state}: the same decision`);
    if (state === 'active') {
      t.ok(broker >= 0.9, 'active: the hardened score');
      t.notOk(shown.message.factors.some((f) => f.id.startsWith('ceiling:')), 'active: no state ceiling');
      continue;
    }
    t.equal(broker, 0, `${state}: the broker enforces 0`);
    t.ok(shown.message.factors.some((f) => f.id === `ceiling:${state}`), `${state}: the ceiling is a factor`);
    t.match(explained.scoreSource, `capped at 0 because the device is ${state}`);
    t.match(text, new RegExp(`^${id} {2}score 0\\.000 {2}\\(model wott-.*\\n {2}capped at 0 by the broker: the device is ${state}\\n`), `${state}: the text says 0 and why`);
    t.match(text, new RegExp(`ceiling:${state} +capped: the device is ${state}`));
    t.match(history[history.length - 1], /Z {2}0\.000 /, `${state}: the history ends at what the broker enforces`);
  }
  t.match(printed.find((p) => p.state === 'quarantined')!.text, /fix: wott device release ID once it is clean/);
});
