/** The committed OpenAPI document is the one the route table generates, and the one the gateway serves. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { buildOpenApi, openApiText, ROUTES } from '../../api/index.js';
import { API_PREFIX, TRUST_EVENTS } from '../../protocol/index.js';
import { requireCommand } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';
import { api, operatorCredentials } from './helpers.js';

t.test('api/openapi.json has not drifted from the route table (npm run openapi rewrites it)', async (t) => {
  const committed = readFileSync(new URL('../../api/openapi.json', import.meta.url), 'utf8');
  t.equal(committed, openApiText(), 'run `npm run openapi` and commit api/openapi.json');
  const doc = JSON.parse(committed);
  t.equal(doc.openapi, '3.1.0');
  for (const r of ROUTES) t.ok(doc.paths[API_PREFIX + r.path]?.[r.method.toLowerCase()], `${r.method} ${r.path} is documented`);
});

t.test('the trust stream is documented as text/event-stream with each of its events', async (t) => {
  const doc = buildOpenApi() as any;
  const ok = doc.paths[`${API_PREFIX}/trust/stream`].get.responses['200'].content;
  t.same(Object.keys(ok), ['text/event-stream'], 'an event stream, not JSON');
  t.same(Object.keys(ok['text/event-stream']['x-wott-events']).sort(), [...TRUST_EVENTS].sort(), 'every event the stream sends');
  const score = ok['text/event-stream']['x-wott-events'].score;
  t.equal(score.id, 'always');
  t.same(score.data.required, ['device', 'score', 'rawScore', 'state', 'modelVersion', 'scoredAt'], "the score event's data schema");
  const params = doc.paths[`${API_PREFIX}/trust/stream`].get.parameters;
  t.match(params, [{ name: 'Last-Event-ID', in: 'header' }], 'resumed with Last-Event-ID');
  const json = doc.paths[`${API_PREFIX}/trust/{id}`].get.responses['200'].content;
  t.same(Object.keys(json), ['application/json'], 'other routes stay JSON');
});

t.test('the gateway serves the same document to an authenticated caller', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const reply = await api(gw, 'GET', '/openapi.json', (await operatorCredentials(gw, 'viewer', 'doc-reader')));
  t.equal(reply.status, 200);
  t.same(reply.json, JSON.parse(openApiText()));
});
