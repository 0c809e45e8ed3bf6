/** The log throttle: a flood of identical lines becomes a few lines and one summary per window. */
import t from 'tap';
import { LogThrottle } from '../lib/log-throttle.js';

function recorder() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> = [];
  return {
    lines,
    info: (obj: object, msg?: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, ...(msg ? { msg } : {}) }),
    warn: (obj: object, msg?: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, ...(msg ? { msg } : {}) }),
  };
}

t.test('repeats of one key are summarised', async (t) => {
  const log = recorder();
  const throttle = new LogThrottle(log, { windowMs: 60_000, burst: 3 });
  t.teardown(() => throttle.close());
  for (let i = 0; i < 10_000; i++) throttle.info('refused:10.0.0.1', { remote: '10.0.0.1' }, 'TLS client refused');
  t.equal(log.lines.length, 3, 'only the burst is logged as it comes');
  throttle.flush();
  t.equal(log.lines.length, 4);
  t.match(log.lines[3], { level: 'info', obj: { remote: '10.0.0.1', repeated: 9_997 }, msg: 'TLS client refused (repeated)' });
  throttle.info('refused:10.0.0.1', { remote: '10.0.0.1' }, 'TLS client refused');
  t.equal(log.lines.length, 5, 'a new window logs again');
  throttle.flush();
  t.equal(log.lines.length, 5, 'no summary when nothing was suppressed');
});

t.test('distinct keys are bounded: varying the source does not defeat the throttle', async (t) => {
  const log = recorder();
  const throttle = new LogThrottle(log, { burst: 1, maxKeys: 100 });
  t.teardown(() => throttle.close());
  for (let i = 0; i < 50_000; i++) throttle.warn(`src:${i}`, { remote: `10.0.${i >> 8}.${i & 255}` }, 'refused');
  t.equal(log.lines.length, 100, 'one line per tracked key, none for the overflow');
  throttle.flush();
  t.equal(log.lines.length, 101);
  t.match(log.lines[100], { level: 'warn', obj: { repeated: 49_900 } });
  t.equal(throttle.suppressedTotal, 49_900);
});
