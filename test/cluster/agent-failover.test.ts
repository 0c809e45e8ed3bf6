/**
 * An agent given several gateways (`--server A,B`, `--mqtt A,B`) keeps renewing and reporting when one is down,
 * and moves on only when a gateway is unreachable: a refusal is the CA's answer on every node.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { AgentStore, EstError, RenewalLoop, ServerList, isUnreachable, splitUrls } from '../../agent/index.js';
import { telemetrySchema, topicFilters } from '../../protocol/index.js';
import { CLI, requireCommand, tempDir } from '../helpers.js';
import { connect, run, serviceCredentials, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { node } from './helpers.js';

const FIXTURE = resolve('test/fixtures/roots/debian12-hardened');

t.test('which failures move to the next gateway', async (t) => {
  t.same(splitUrls('https://a:8443, https://b:8443'), ['https://a:8443', 'https://b:8443']);
  t.throws(() => splitUrls('https://a:8443,not a url'));
  t.throws(() => splitUrls(' , '));
  t.throws(() => splitUrls(Array.from({ length: 17 }, (_, i) => `https://n${i}`).join(',')));
  t.ok(isUnreachable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })));
  t.ok(isUnreachable(new EstError('unavailable', 503)));
  t.notOk(isUnreachable(new EstError('refused', 403)), 'a refusal is the answer, not an outage');
  t.notOk(isUnreachable(new EstError('issued certificate is for another key')), 'a bad reply is not retried elsewhere');

  const list = new ServerList(['https://a', 'https://b', 'https://c']);
  const tried: string[] = [];
  const down = new Set(['https://a']);
  const attempt = async (s: string) => {
    tried.push(s);
    if (down.has(s)) throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    return s;
  };
  t.equal(await list.call(attempt), 'https://b');
  t.equal(await list.call(attempt), 'https://b', 'the gateway that answered last goes first');
  t.same(tried, ['https://a', 'https://b', 'https://b']);
  await t.rejects(list.call(async () => Promise.reject(new EstError('renewal refused: HTTP 403', 403))), /403/, 'refusal returned at once');
  down.add('https://b').add('https://c');
  await t.rejects(list.call(attempt), /refused/, 'all down: the last error');
});

t.test('with one gateway down the agent renews and reports through another', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const a = await node(t, dir, redis.url, 'node-a');
  const b = await node(t, dir, redis.url, 'node-b');
  const agentDir = join(tempDir(t), 'wott');
  const token = (await a.ca.createToken('pi-1')).token;
  const servers = `https://localhost:${a.httpsPort},https://localhost:${b.httpsPort}`;
  const enrolled = await run(process.execPath, [CLI, 'agent', 'enroll', '--server', servers, '--device', 'pi-1', '--token', token, '--dir', agentDir, '--ca-fingerprint', a.ca.material.root.fingerprint256], 60_000);
  t.equal(enrolled.code, 0, enrolled.stderr);
  t.same(new AgentStore(agentDir).state().servers, servers.split(','), 'the agent keeps every gateway');

  const mqttUrls = `mqtts://localhost:${a.mqttPort},mqtts://localhost:${b.mqttPort}`;
  await a.close(); // node A is gone: EST and MQTT on it refuse connections

  const renewal = new RenewalLoop(new AgentStore(agentDir), () => undefined, pino({ level: 'silent' }));
  t.ok(await renewal.renewNow(), 'renewed through node B');
  t.equal((await b.ca.inventory.certificates({ deviceId: 'pi-1' })).filter((c) => c.status === 'superseded').length, 1, 'the first certificate was superseded');

  const scorer = await connect(b, { ...(await serviceCredentials(b, tempDir(t), 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const reports: number[] = [];
  scorer.on('message', (_topic, payload) => reports.push(telemetrySchema.parse(JSON.parse(payload.toString())).reportId));
  await scorer.subscribeAsync(topicFilters.telemetry, { qos: 1 });
  const agent = spawn(process.execPath, [CLI, 'agent', 'run', '--dir', agentDir, '--mqtt', mqttUrls, '--interval', '2s', '--root', FIXTURE], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  agent.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  t.teardown(() => void agent.kill('SIGKILL'));
  await waitFor(() => reports.length > 0, `a report through node B (agent log: ${log.join('')})`, 30_000);
  await waitFor(() => log.join('').includes('MQTT connected'), 'the connect log line');
  t.match(log.join(''), new RegExp(`"broker":"localhost:${b.mqttPort}".*"msg":"MQTT connected"`), 'the agent says which broker it reached: node B');
});
