/**
 * The HTTPS API fuzzer (fuzz/api.ts) for a short, fixed, seeded run against a real gateway, then its kept failures
 * replayed. Long runs: npm run fuzz -- api --seconds N.
 */
import t from 'tap';
import { apiTally, apiTarget } from '../../fuzz/api.js';
import { corpus, fuzz } from '../../fuzz/engine.js';
import { ROUTES } from '../../api/index.js';

const SEED = 21;
const CASES = 400;

t.test('api', async (t) => {
  const outcome = await fuzz(apiTarget, { seed: SEED, cases: CASES, corpusDir: null });
  t.equal(outcome.cases, CASES, `${CASES} cases run`);
  const why = outcome.failed ? `: ${outcome.error}; replay: npm run fuzz -- api --seed ${SEED} --path ${outcome.path}; input ${JSON.stringify(outcome.input).slice(0, 500)}` : '';
  t.notOk(outcome.failed, `no property broken${why}`);
  // The run reached what the properties are about: every route, refusals of each kind of caller, and real writes.
  t.equal(apiTally.routes.size, ROUTES.length + 2, 'every route of the table and the login link was called');
  for (const caller of ['none', 'foreign', 'device', 'cookie', 'viewer', 'nocsrf']) t.ok(apiTally.byCaller.get(`${caller} 4xx`), `${caller}: refusals seen`);
  t.ok((apiTally.byCaller.get('admin 2xx') ?? 0) + (apiTally.byCaller.get('session 2xx') ?? 0) > 20, 'the admin got past validation often');
  for (const route of ['POST /devices/actions', 'PUT /credentials/{name}', 'POST /tokens', 'PUT /devices/{id}/tags']) t.ok(apiTally.writesDone.has(route), `a write through ${route} succeeded (and was checked)`);
  const kept = corpus('api');
  if (kept.length) {
    await apiTarget.prepare?.();
    t.teardown(() => apiTarget.close?.());
    for (const { file, entry } of kept) await t.resolves(async () => apiTarget.check(entry.input as Parameters<typeof apiTarget.check>[0]), `corpus ${file}`);
  }
});
