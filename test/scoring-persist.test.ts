/**
 * The scoring service stores what a storm changes in bounded commits: a real Aedes broker carries 1,000 devices'
 * state reports to a real ScoringService over the SQLite score store; persist() stores every record and score, in
 * commits of at most 256 records, with the event loop turning between them (one commit of a 10,000-device storm held
 * the broker's event loop for 2.7 s in the soak).
 */
import { Aedes } from 'aedes';
import { join } from 'node:path';
import t from 'tap';
import { topics } from '../protocol/index.js';
import { aedesBus, loadModel, ScoreEngine, ScoringService } from '../scoring/index.js';
import { openSqliteScoreStore } from '../store/index.js';
import { tempDir } from './helpers.js';
import { fixtureTelemetry } from './scoring-fixtures.js';

t.test('a storm of changed devices is persisted in bounded commits, all of it', async (t) => {
  const broker = await Aedes.createBroker();
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())));
  const store = await openSqliteScoreStore(join(tempDir(t), 'scores.db'));
  t.teardown(() => store.close());
  const commits: number[] = [];
  let turns = 0;
  let turnsAtLastCommit = -1;
  const turnsBetween: number[] = [];
  const counting = Object.create(store) as typeof store;
  counting.commit = async (records, scores, epoch) => {
    commits.push(records.length);
    if (turnsAtLastCommit >= 0) turnsBetween.push(turns - turnsAtLastCommit);
    turnsAtLastCommit = turns;
    return store.commit(records, scores, epoch);
  };
  // The service's own timer would persist in the background: an hour keeps it out of the measurement.
  const service = new ScoringService({ bus: aedesBus(broker), engine: new ScoreEngine({ model: loadModel() }), store: counting, republishMs: 3_600_000, tickMs: 3_600_000, persistMs: 3_600_000 });
  await service.start();
  t.teardown(() => service.close());

  const DEVICES = 1000;
  const now = Date.now();
  for (let i = 0; i < DEVICES; i++) {
    const device = `storm-${String(i).padStart(4, '0')}`;
    const payload = Buffer.from(JSON.stringify(fixtureTelemetry('debian12-hardened', device, 1, now)));
    await new Promise<void>((resolve, reject) => broker.publish({ cmd: 'publish', topic: topics.telemetry(device), payload, qos: 0, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())));
  }
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(service.counters.accepted, DEVICES, 'every state report was accepted');

  const ticker = setInterval(() => turns++, 0);
  try {
    await service.persist();
  } finally {
    clearInterval(ticker);
  }
  t.ok(commits.length >= Math.ceil(DEVICES / 256), `${commits.length} commits for ${DEVICES} records`);
  t.ok(commits.every((n) => n <= 256), `no commit over 256 records (${commits.join(', ')})`);
  t.ok(turnsBetween.length > 0 && turnsBetween.every((n) => n > 0), `timers ran between commits (${turnsBetween.join(', ')})`);

  const stored = new Map(await store.records());
  t.equal(stored.size, DEVICES, 'every device record is stored');
  t.ok(JSON.parse(stored.get('storm-0999')!), 'records are whole JSON');
  const latest = await store.history('storm-0500');
  t.equal(latest.length, 1, 'the score of a device in a later chunk is stored too');

  // Nothing left: another persist commits nothing.
  const before = commits.length;
  await service.persist();
  t.equal(commits.length, before, 'a persist with nothing changed does not commit');
});
