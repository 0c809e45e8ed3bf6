/** The committed OpenAPI document is the one the route table generates, and the one the gateway serves. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { openApiText, ROUTES } from '../../api/index.js';
import { API_PREFIX } from '../../protocol/index.js';
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

t.test('the gateway serves the same document to an authenticated caller', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const reply = await api(gw, 'GET', '/openapi.json', (await operatorCredentials(gw, 'viewer', 'doc-reader')));
  t.equal(reply.status, 200);
  t.same(reply.json, JSON.parse(openApiText()));
});
