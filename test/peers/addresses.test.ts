/** The address → device map (scoring/addresses.ts): holdings over time, NAT, normalisation, the size bound. Pure. */
import t from 'tap';
import { AddressBook, normalizeAddress } from '../../scoring/index.js';

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
