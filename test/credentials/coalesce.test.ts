/**
 * CredentialDelivery under a burst of score messages (a connect ramp: every device's first score names it): the
 * devices named while a pass waits join that pass, so the store is read once for all of them, and every one of them
 * is still brought in line. A real SQLite credential store and vault; the port is the gateway's shape, in memory.
 */
import t from 'tap';
import { pino } from 'pino';
import { CredentialDelivery, CredentialVault, type DeliveryPort } from '../../credentials/index.js';
import { openSelectedCredentialStore, type CredentialStore } from '../../store/index.js';
import { tempDir } from '../helpers.js';

t.test('a burst of reconciles shares one pass, and each named device is synced', async (t) => {
  const dir = tempDir(t);
  const store = await openSelectedCredentialStore(undefined, dir);
  t.teardown(() => store.close());
  const vault = await CredentialVault.openFor(store, dir);
  let generationReads = 0;
  const counted = new Proxy(store, {
    get(target, prop) {
      if (prop === 'generation') return () => (generationReads++, target.generation());
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as CredentialStore;
  const asked: string[] = [];
  const port: DeliveryPort = {
    send: async () => undefined,
    standing: (device) => (asked.push(device), { state: 'active', tags: [], score: 0.9, serial: '01' }),
    devices: () => [],
    certificate: async () => undefined,
    listening: () => false,
    audit: async () => undefined,
  };
  const delivery = new CredentialDelivery(counted, vault, port, pino({ level: 'silent' }));
  t.teardown(() => delivery.close());

  const devices = Array.from({ length: 100 }, (_, i) => `dev-${i}`);
  await Promise.all(devices.map((d) => delivery.reconcile([d])));
  t.equal(generationReads, 1, '100 reconciles named in one turn: one pass');
  t.same([...asked].sort(), [...devices].sort(), 'every named device was synced, once');

  // A device named once that pass is over gets a pass of its own.
  await delivery.reconcile(['dev-late']);
  t.equal(generationReads, 2);
  t.equal(asked.at(-1), 'dev-late');
});
