/** The address → device map (scoring/addresses.ts): holdings over time, NAT, normalisation, the size bound. Pure. */
import t from 'tap';
import { AddressBook, NodeWatch, normalizeAddress } from '../../scoring/index.js';

t.test('normalisation: IPv4-mapped IPv6 is IPv4; IPv6 lowercased without zone or brackets', async (t) => {
  t.equal(normalizeAddress('::ffff:127.0.0.2'), '127.0.0.2');
  t.equal(normalizeAddress('::FFFF:10.1.2.3'), '10.1.2.3');
  t.equal(normalizeAddress('[FE80::1%eth0]'), 'fe80::1');
  t.equal(normalizeAddress('2001:DB8::5'), '2001:db8::5');
  t.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd', 'not a mapped IPv4 address: left alone');
});

t.test('a holding spans connect to last disconnect; lookups are by overlap with a window', async (t) => {
  const book = new AddressBook();
  book.connect('dev-x', '::ffff:10.0.0.5', 'n1', 1000);
  t.same(book.holders('10.0.0.5', 0, 500), [], 'before it connected: nobody');
  t.same(book.holders('10.0.0.5', 0, 1000), ['dev-x']);
  t.same(book.holders('10.0.0.5', 5000, 9000), ['dev-x'], 'still connected: holds it now');
  t.ok(book.connected('dev-x'));
  // A second session from the same address: the holding stays open until both close.
  book.connect('dev-x', '10.0.0.5', 'n1', 2000);
  book.disconnect('dev-x', '10.0.0.5', 'n1', 3000);
  t.same(book.holders('10.0.0.5', 8000, 9000), ['dev-x'], 'one session left');
  book.disconnect('dev-x', '::ffff:10.0.0.5', 'n1', 4000);
  t.notOk(book.connected('dev-x'));
  t.same(book.holders('10.0.0.5', 3500, 9000), ['dev-x'], 'a window reaching back before the close still sees it');
  t.same(book.holders('10.0.0.5', 4001, 9000), [], 'a window after the close does not');
  t.same(book.holders('10.0.0.6', 0, 9000), [], 'another address: nobody');
  t.equal(book.size, 1);
});

t.test('NAT: an address held by several devices in the window returns all of them (the caller blames none)', async (t) => {
  const book = new AddressBook();
  book.connect('dev-a', '192.0.2.1', 'n1', 1000);
  book.connect('dev-b', '192.0.2.1', 'n2', 1500); // another node: events carry the node
  t.same(book.holders('192.0.2.1', 0, 2000).sort(), ['dev-a', 'dev-b']);
  book.disconnect('dev-a', '192.0.2.1', 'n1', 3000);
  t.same(book.holders('192.0.2.1', 3001, 4000), ['dev-b'], 'after dev-a left, only dev-b held it');
  t.same(book.holders('192.0.2.1', 2500, 4000).sort(), ['dev-a', 'dev-b'], 'a window spanning both: shared');
});

t.test('a disconnect without an address closes the device\'s only open holding on that node', async (t) => {
  const book = new AddressBook();
  book.connect('dev-x', '10.0.0.5', 'n1', 1000);
  book.disconnect('dev-x', undefined, 'n2', 2000);
  t.ok(book.connected('dev-x'), 'another node\'s disconnect does not close it');
  book.disconnect('dev-x', undefined, 'n1', 2000);
  t.notOk(book.connected('dev-x'));
  book.disconnect('dev-x', '10.0.0.5', 'n1', 2500); // a duplicate: ignored
  t.same(book.holders('10.0.0.5', 2001, 3000), []);
});

t.test('bounded: beyond the limit closed holdings go first, then the least recently touched', async (t) => {
  const book = new AddressBook({ limit: 16 });
  for (let i = 0; i < 8; i++) book.connect(`open-${i}`, `10.0.1.${i}`, 'n', i);
  for (let i = 0; i < 8; i++) {
    book.connect(`closed-${i}`, `10.0.2.${i}`, 'n', 100 + i);
    book.disconnect(`closed-${i}`, `10.0.2.${i}`, 'n', 200 + i);
  }
  t.equal(book.size, 16);
  for (let i = 0; i < 8; i++) book.connect(`new-${i}`, `10.0.3.${i}`, 'n', 300 + i);
  t.equal(book.size, 16, 'never above the limit');
  for (let i = 0; i < 8; i++) t.same(book.holders(`10.0.1.${i}`, 0, 400), [`open-${i}`], `open-${i} (still connected) is kept`);
  for (let i = 0; i < 8; i++) t.same(book.holders(`10.0.2.${i}`, 0, 400), [], `closed-${i} went first`);
  t.equal(book.evicted, 8);
  // Every holding open: the oldest open one goes (a missed attribution, never a wrong one).
  book.connect('newest', '10.0.4.1', 'n', 500);
  t.equal(book.size, 16);
  t.same(book.holders('10.0.4.1', 0, 600), ['newest']);
});

t.test('seeding sessions that were open before scoring listened: never counted twice', async (t) => {
  const book = new AddressBook();
  book.connect('dev-x', '10.0.0.5', 'n1', 1000); // its connect event arrived too
  book.seed('dev-x', '::ffff:10.0.0.5', 'n1', 1, 1100);
  book.seed('dev-y', '10.0.0.6', 'n1', 2, 1100); // two sessions, no events
  book.disconnect('dev-x', '10.0.0.5', 'n1', 2000);
  t.notOk(book.connected('dev-x'), 'one disconnect closes what one connect (plus its seed) opened');
  book.disconnect('dev-y', '10.0.0.6', 'n1', 2000);
  t.ok(book.connected('dev-y'), 'one of two seeded sessions left');
  t.same(book.holders('10.0.0.6', 1100, 3000), ['dev-y']);
  book.disconnect('dev-y', '10.0.0.6', 'n1', 2500);
  t.notOk(book.connected('dev-y'));
});

t.test('prune forgets closed holdings past retention', async (t) => {
  const book = new AddressBook({ retainMs: 1000 });
  book.connect('dev-x', '10.0.0.5', 'n', 0);
  book.disconnect('dev-x', '10.0.0.5', 'n', 100);
  book.connect('dev-y', '10.0.0.6', 'n', 0);
  book.prune(1200);
  t.equal(book.size, 1, 'the closed one is gone, the open one stays');
});

t.test('a dead node: its open holdings close when it died, other nodes\' stay open, a later holder is alone', async (t) => {
  const book = new AddressBook();
  book.connect('dev-x', '10.0.0.5', 'n1', 1000);
  book.connect('dev-y', '10.0.0.6', 'n2', 1000);
  book.connect('dev-v', '10.0.0.7', 'n1', 1000);
  book.disconnect('dev-v', '10.0.0.7', 'n1', 2000);
  t.same([...book.openNodes()].sort(), ['n1', 'n2']);
  t.equal(book.closeNode('n1', 5000), 1, 'one open holding on n1 (dev-v had already left)');
  t.notOk(book.connected('dev-x'));
  t.ok(book.connected('dev-y'), "another node's sessions are kept");
  t.same(book.holders('10.0.0.5', 4000, 4500), ['dev-x'], 'it still held the address before the node died');
  t.same(book.holders('10.0.0.5', 6000, 7000), [], 'not after');
  t.same(book.holders('10.0.0.7', 1500, 1500), ['dev-v'], 'a holding closed earlier keeps its own end');
  book.connect('dev-w', '10.0.0.5', 'n2', 8000);
  t.same(book.holders('10.0.0.5', 8000, 9000), ['dev-w'], 'a later holder of the address is not shared with a ghost');
  t.same([...book.openNodes()], ['n2']);
  t.equal(book.closeNode('n1', 9000), 0, 'closing again changes nothing');
  // A device that comes back on a node marked dead (a partition) holds its address again.
  book.connect('dev-x', '10.0.0.5', 'n1', 10_000);
  t.ok(book.connected('dev-x'));
});

t.test('NodeWatch: a node is dead once its heartbeat has been missing for the grace; never this node; alive again resets', async (t) => {
  const watch = new NodeWatch('me', 5000);
  const holding = new Set(['me', 'n1', 'n2']);
  t.same(watch.dead(holding, new Set(['n2']), 1000), [], 'n1 missing: not yet (nor me, missing from Redis)');
  t.same(watch.dead(holding, new Set(['n2']), 5999), [], 'within the grace');
  t.same(watch.dead(holding, new Set(['n1', 'n2']), 6000), [], 'n1 back: reset');
  t.same(watch.dead(holding, new Set(['n2']), 7000), []);
  t.same(watch.dead(holding, new Set(['n2']), 11_999), [], 'the grace counts from the new miss');
  t.same(watch.dead(holding, new Set(['n2']), 12_000), [{ node: 'n1', since: 7000 }], 'dead, since it was first missed');
  t.same(watch.dead(new Set(['me', 'n2']), new Set(), 13_000), [], 'n2 missing once: not yet');
  t.same(watch.dead(new Set(['me']), new Set(), 20_000), [], 'a node without open holdings is nothing to close');
  t.same(watch.dead(new Set(['me', 'n2']), new Set(), 21_000), [], 'its earlier miss was forgotten');
  t.same(watch.dead(new Set(['me', 'n2']), new Set(), 26_000), [{ node: 'n2', since: 21_000 }]);
});
