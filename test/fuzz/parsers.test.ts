/**
 * The parser fuzzers (fuzz/targets.ts) for a short, fixed, seeded run each, so CI is deterministic; then every
 * kept failure in test/fuzz/corpus/TARGET/ replayed as a regression case. Long runs: npm run fuzz -- TARGET --seconds N.
 */
import fc from 'fast-check';
import t from 'tap';
import { corpus, fuzz } from '../../fuzz/engine.js';
import { PARSER_TARGETS as TARGETS, type FuzzTarget } from '../../fuzz/targets.js';
import { tempDir } from '../helpers.js';

const SEED = 21;
const CASES = 1000;

for (const target of TARGETS.values()) {
  t.test(target.name, async (t) => {
    const outcome = await fuzz(target, { seed: SEED, cases: CASES, corpusDir: null });
    t.equal(outcome.cases, CASES, `${CASES} cases run`);
    const why = outcome.failed ? `: ${outcome.error}; replay: npm run fuzz -- ${target.name} --seed ${SEED} --path ${outcome.path}; input ${JSON.stringify(outcome.input)?.slice(0, 500)}` : '';
    t.notOk(outcome.failed, `no property broken${why}`);
    const kept = corpus(target.name);
    for (const { file, entry } of kept) {
      t.equal(entry.target, target.name, `${file} belongs to ${target.name}`);
      await t.resolves(async () => target.check(entry.input), `corpus ${file.split('/').slice(-1)[0]} (${entry.error.slice(0, 120)})`);
    }
  });
}

t.test('a broken property is found, shrunk, kept and replayed', async (t) => {
  // A parser that "crashes" on any '}' after a '{': the fuzzer must find that, shrink it and keep it.
  const broken: FuzzTarget<string> = {
    name: 'broken',
    description: 'test target',
    input: () => fc.string({ unit: 'grapheme-ascii' }),
    check: (s) => {
      if (/\{.*\}/.test(s)) throw new TypeError('escaped');
    },
  };
  const dir = tempDir(t);
  const outcome = await fuzz(broken, { seed: SEED, cases: 2000, corpusDir: dir });
  t.ok(outcome.failed, 'the failure is found');
  t.equal(outcome.input, '{}', 'and shrunk to the smallest failing input');
  t.match(outcome.error, /TypeError: escaped/);
  const kept = corpus('broken', dir);
  t.equal(kept.length, 1, 'kept once');
  t.same(kept[0]!.entry.input, '{}');
  t.equal(kept[0]!.entry.seed, SEED);
  // The printed seed and path replay exactly that case.
  const replay = await fuzz(broken, { seed: SEED, path: outcome.path, corpusDir: null });
  t.ok(replay.failed, 'seed and path replay the failure');
  t.equal(replay.input, '{}');
});
