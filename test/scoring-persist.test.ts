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

t.test("a forced republish of an unchanged score refreshes the retained copy and adds no history row; a changed score adds one, and so does a restart's republish only if the score moved", async (t) => {
  const broker = await Aedes.createBroker();
  t.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())));
  const file = join(tempDir(t), 'scores.db');
  let store = await openSqliteScoreStore(file);
  let service = new ScoringService({ bus: aedesBus(broker), engine: new ScoreEngine({ model: loadModel() }), store, republishMs: 0, tickMs: 3_600_000, persistMs: 3_600_000 });
  await service.start();
  const retained: string[] = [];
  await new Promise<void>((resolve) =>
    broker.subscribe(
      topics.scores('steady-1'),
      (packet, cb) => {
        retained.push(packet.payload.toString());
        cb();
      },
      resolve,
    ),
  );
  const send = (reportId: number, root: 'debian12-hardened' | 'rpi-factory') =>
    new Promise<void>((resolve, reject) =>
      broker.publish({ cmd: 'publish', topic: topics.telemetry('steady-1'), payload: Buffer.from(JSON.stringify(fixtureTelemetry(root, 'steady-1', reportId, Date.now()))), qos: 0, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())),
    );
  await send(1, 'debian12-hardened');
  await new Promise((resolve) => setImmediate(resolve));
  await service.persist();
  t.equal((await store.history('steady-1')).length, 1, 'the first score is history');

  // republishMs 0: every tick is a republish of every device.
  for (let i = 0; i < 5; i++) {
    service.tick();
    await new Promise((resolve) => setTimeout(resolve, 5)); // the tick's slices run on setImmediate
  }
  await service.persist();
  t.ok(retained.length >= 6, `the score was published again on every tick (${retained.length} messages)`);
  t.equal((await store.history('steady-1')).length, 1, 'five republishes of the same score: no new history row');

  await send(2, 'rpi-factory');
  await new Promise((resolve) => setImmediate(resolve));
  await service.persist();
  const rows = await store.history('steady-1');
  t.equal(rows.length, 2, 'a changed score is history');
  t.ok(rows.at(-1)!.score < 0.5, 'the new, lower score last (oldest first)');

  // A restart republishes every score: an unchanged one adds no row.
  await service.close();
  await store.close();
  store = await openSqliteScoreStore(file);
  service = new ScoringService({ bus: aedesBus(broker), engine: new ScoreEngine({ model: loadModel() }), store, republishMs: 3_600_000, tickMs: 3_600_000, persistMs: 3_600_000 });
  t.teardown(async () => {
    await service.close();
    await store.close();
  });
  const before = retained.length;
  await service.start();
  await service.persist();
  t.ok(retained.length > before, 'the restart republished the score');
  t.equal((await store.history('steady-1')).length, 2, 'and added no history row');
});
