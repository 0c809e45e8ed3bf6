/**
 * The MQTT fuzzer (fuzz/mqtt.ts) for a short, fixed, seeded run against a real gateway over mTLS, then its kept
 * failures replayed. Long runs: npm run fuzz -- mqtt --seconds N.
 */
import t from 'tap';
import { corpus, fuzz } from '../../fuzz/engine.js';
import { mqttMemory, mqttTarget } from '../../fuzz/mqtt.js';

const SEED = 21;
const CASES = 150;

t.test('mqtt', async (t) => {
  const outcome = await fuzz(mqttTarget, { seed: SEED, cases: CASES, corpusDir: null });
  t.equal(outcome.cases, CASES, `${CASES} cases run`);
  const why = outcome.failed ? `: ${outcome.error}; replay: npm run fuzz -- mqtt --seed ${SEED} --path ${outcome.path}; input ${String(outcome.input).slice(0, 500)}` : '';
  t.notOk(outcome.failed, `no property broken${why}`);
  // The score property (checked after every case inside the target) and memory back to its baseline after a full GC.
  t.equal(mqttMemory.finalConnections, mqttMemory.baselineConnections, 'connections back to the baseline (the legitimate device and the scorer)');
  const growthMb = (mqttMemory.finalHeapBytes - mqttMemory.baselineHeapBytes) / 1048576;
  t.comment(`heap after GC: ${(mqttMemory.baselineHeapBytes / 1048576).toFixed(1)} MB after prepare, ${(mqttMemory.finalHeapBytes / 1048576).toFixed(1)} MB after ${CASES} cases`);
  // Generous against GC noise, yet a leak of 100 kB per case (a connection and its buffers kept) would cross it.
  t.ok(growthMb < 16, `heap growth ${growthMb.toFixed(1)} MB < 16 MB`);
  const kept = corpus('mqtt');
  if (kept.length) {
    await mqttTarget.prepare?.();
    t.teardown(() => mqttTarget.close?.());
    for (const { file, entry } of kept) await t.resolves(async () => mqttTarget.check(String(entry.input)), `corpus ${file}`);
  }
});
