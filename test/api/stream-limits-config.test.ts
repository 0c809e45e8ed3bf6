/**
 * The API's stream limits come from wott.yaml (api.trustStream, api.eventStream): documented defaults, parsed
 * values, strict fields and bounds; and a gateway started with the limits a config gives enforces them on
 * GET /api/v1/events/stream (a second stream over maxSubscribers: 1 gets 503, heartbeats at the configured pace).
 */
import t from 'tap';
import { DEFAULT_EVENT_STREAM_LIMITS, DEFAULT_TRUST_STREAM_LIMITS } from '../../api/index.js';
import { ConfigError, parseConfig, streamLimitsFromConfig } from '../../cli/config.js';
import { requireCommand } from '../helpers.js';
import { testGateway, waitFor } from '../mqtt-helpers.js';
import { openStream } from '../trust/helpers.js';
import { api, operatorCredentials } from './helpers.js';

t.test('defaults are the API defaults; values parse; unknown fields and out-of-range values are refused', async (t) => {
  t.same(streamLimitsFromConfig(parseConfig('')), { trustStream: DEFAULT_TRUST_STREAM_LIMITS, eventStream: DEFAULT_EVENT_STREAM_LIMITS }, 'no config: the documented defaults');
  const config = parseConfig('api:\n  eventStream:\n    maxSubscribers: 20\n    heartbeat: 5s\n    maxBufferedBytes: 65536\n  trustStream:\n    heartbeat: 30s\n');
  t.same(streamLimitsFromConfig(config), {
    eventStream: { maxSubscribers: 20, heartbeatMs: 5000, maxBufferedBytes: 65536 },
    trustStream: { ...DEFAULT_TRUST_STREAM_LIMITS, heartbeatMs: 30_000 },
  });
  for (const bad of ['api:\n  eventStream:\n    maxSubscriber: 3\n', 'api:\n  eventStream:\n    maxSubscribers: 0\n', 'api:\n  eventStream:\n    maxBufferedBytes: 10\n', 'api:\n  eventStream:\n    heartbeat: soon\n']) {
    t.throws(() => parseConfig(bad), ConfigError, JSON.stringify(bad));
  }
});

t.test('a gateway with the limits from a config enforces them on the events stream', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const limits = streamLimitsFromConfig(parseConfig('api:\n  eventStream:\n    maxSubscribers: 1\n    heartbeat: 100ms\n'));
  const gw = await testGateway(t, { api: limits });
  const viewer = await operatorCredentials(gw, 'viewer', 'limits');
  const first = openStream(gw, viewer, undefined, { path: '/events/stream' });
  t.teardown(() => first.kill());
  t.equal(await first.status, 200);
  await waitFor(() => first.comments.length >= 2, 'heartbeats at the configured pace');
  const second = await api(gw, 'GET', '/events/stream', viewer);
  t.equal(second.status, 503, 'a second stream over maxSubscribers: 1');
  t.match(second.json.message, /too many event streams open \(limit 1\)/);
  // The trust stream keeps its own limit.
  const trust = openStream(gw, viewer);
  t.teardown(() => trust.kill());
  t.equal(await trust.status, 200, 'the trust stream is not counted against it');
});
