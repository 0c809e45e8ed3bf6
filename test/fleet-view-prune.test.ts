/**
 * FleetView keeps superseded and revoked certificates only until they expire: each renewal leaves one behind, and a
 * fleet renewing fast must not hold them for long after expiry (the soak's memory slope).
 */
import t from 'tap';
import { CertificateAuthority } from '../ca/index.js';
import { FleetView, PRUNE_INTERVAL_MS } from '../fleet/index.js';
import { makeCsr, requireCommand, tempDir } from './helpers.js';
import { waitFor } from './mqtt-helpers.js';

t.test('by default a minute at most passes between prunes', async (t) => {
  t.ok(PRUNE_INTERVAL_MS <= 60_000, `${PRUNE_INTERVAL_MS} ms`);
});

t.test('superseded certificates leave memory once expired, at the next prune', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  let clock = Date.now();
  const view = await FleetView.open(ca.inventory, { now: () => clock, pruneMs: 20 });
  t.teardown(() => view.close());

  const issued = await ca.enrollWithToken('prune-dev', (await ca.createToken('prune-dev')).token, makeCsr(dir, '/CN=prune-dev').der);
  let current = issued;
  const superseded: string[] = [];
  let lastExpiry = 0;
  for (let k = 0; k < 3; k++) {
    const next = await ca.reenroll(current.der, makeCsr(dir, '/CN=prune-dev').der);
    superseded.push(current.serial);
    lastExpiry = Math.max(lastExpiry, current.notAfter.getTime());
    current = next;
  }
  await view.refresh();
  t.equal(view.device('prune-dev')?.certificate?.serial, current.serial, 'the newest certificate is current');
  for (const serial of superseded) t.ok(view.isSuperseded(serial), 'a superseded, unexpired certificate is known as such');
  t.equal(view.inactiveCount, 3);

  // Still valid: a prune keeps them (a superseded certificate must still be refused at CONNECT).
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.equal(view.inactiveCount, 3, 'unexpired ones are kept across prunes');

  // Past their notAfter: the next prune drops them; the current certificate is untouched. Renewals that straddle a
  // second boundary get a later notAfter (X.509 times have whole seconds), so step past the latest of them.
  clock = lastExpiry + 1;
  await waitFor(() => view.inactiveCount === 0, 'the prune', 5000);
  t.equal(view.inactiveCount, 0, 'expired superseded certificates are dropped');
  t.equal(view.device('prune-dev')?.certificate?.serial, current.serial, 'the current certificate stays');
});
