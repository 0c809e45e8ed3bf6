/**
 * Refused EST requests cannot flood the log (issue 11, item 13, EST half), against a real gateway over real TLS:
 * hundreds of refusals become a few lines per status, path and source plus one summary, with no secret in them;
 * a legitimate enrollment is still logged.
 */
import t from 'tap';
import { makeCsr, memoryLogger, requireCommand, tempDir } from './helpers.js';
import { enroll, testGateway } from './mqtt-helpers.js';
import { est } from './est-helpers.js';
import { EST_PATHS } from '../protocol/index.js';

type Line = { level: string; obj: Record<string, unknown>; msg?: string };

t.test('a flood of refused EST requests is summarised, secrets never logged', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const log = memoryLogger();
  const target = await testGateway(t, { log });
  const work = tempDir(t);
  const csr = makeCsr(work, '/CN=victim').der.toString('base64');
  const secret = 'Sup3rSecretGuess-' + Math.random().toString(36).slice(2);

  const N = 100;
  for (let i = 0; i < N; i++) {
    await Promise.all([
      // Token guesses (the password must never reach the log) ...
      est(target, EST_PATHS.simpleenroll, { body: csr, auth: `victim:${secret}-${i}` }),
      // ... renewals without a certificate, and random paths with a secret-looking query string.
      est(target, EST_PATHS.simplereenroll, { body: csr }),
      est(target, `/nope-${i}?token=${secret}`),
    ]);
  }
  // A legitimate device enrolls in the middle of it.
  await enroll(target, work, 'legit-1');

  const refused = () => (log.lines as Line[]).filter((l) => l.msg?.startsWith('EST request refused'));
  t.equal(refused().length, 15, '5 lines for each of the 3 kinds of refusal (status + path + source), not 300');
  t.ok((log.lines as Line[]).some((l) => l.msg === 'enrolled' && l.obj.device === 'legit-1'), 'the enrollment is logged');

  await target.close(); // ends the throttle window: one summary per kind
  const summaries = refused().filter((l) => l.msg === 'EST request refused (repeated)');
  t.equal(summaries.length, 3, 'one summary per kind');
  t.equal(summaries.reduce((sum, l) => sum + Number(l.obj.repeated), 0), 3 * N - 15, 'every refusal is accounted for');
  t.same(new Set(refused().map((l) => l.obj.remote)), new Set(['127.0.0.1']), 'each line names the source');
  const text = JSON.stringify(log.lines);
  t.notOk(text.includes(secret), 'no token or query string in the log');
  t.notOk(text.includes(Buffer.from(`victim:${secret}`).toString('base64').slice(0, 20)), 'no Authorization header in the log');
});
