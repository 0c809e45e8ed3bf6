/**
 * The EST fuzzer (fuzz/est.ts) for a short, fixed, seeded run against a real gateway over HTTPS, then its kept
 * failures replayed. Long runs: npm run fuzz -- est --seconds N.
 */
import t from 'tap';
import { corpus, fuzz } from '../../fuzz/engine.js';
import { estTarget } from '../../fuzz/est.js';

const SEED = 21;
const CASES = 300;

t.test('est', async (t) => {
  const outcome = await fuzz(estTarget, { seed: SEED, cases: CASES, corpusDir: null });
  t.equal(outcome.cases, CASES, `${CASES} cases run`);
  const why = outcome.failed ? `: ${outcome.error}; replay: npm run fuzz -- est --seed ${SEED} --path ${outcome.path}; input ${JSON.stringify(outcome.input).slice(0, 500)}` : '';
  t.notOk(outcome.failed, `no property broken${why}`);
  const kept = corpus('est');
  if (kept.length) {
    await estTarget.prepare?.();
    t.teardown(() => estTarget.close?.());
    for (const { file, entry } of kept) await t.resolves(async () => estTarget.check(entry.input as Parameters<typeof estTarget.check>[0]), `corpus ${file}`);
  }
});
