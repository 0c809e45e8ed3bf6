/**
 * Rejecting a device from the claim queue (FleetService.reject) on a real CA and inventory: its claim-mode
 * certificate is revoked and on the CRL that openssl reads, the device is `revoked` (out of the queue) and keeps its
 * id (claim mode cannot take it again; a token can), the action is audited, the fleet feed says "rejected"; only an
 * unclaimed device can be rejected, and a refusal is audited too.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from '../ca/index.js';
import { FleetEvents, FleetService, FleetView } from '../fleet/index.js';
import type { FleetEvent } from '../protocol/index.js';
import { makeCsr, openssl, requireCommand, tempDir } from './helpers.js';

t.test('reject: an unclaimed device is refused, revoked and audited', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const view = await FleetView.open(ca.inventory);
  t.teardown(() => view.close());
  const events = new FleetEvents(view);
  t.teardown(() => events.close());
  const seen: FleetEvent[] = [];
  events.onEvent((e) => seen.push(e));
  const fleet = new FleetService(ca, 'session:operator:olga');

  const issued = await ca.enrollUnclaimed(makeCsr(dir, '/CN=squatter-1').der);
  await ca.enrollWithToken('good-1', (await ca.createToken('good-1')).token, makeCsr(dir, '/CN=good-1').der);
  await view.refresh();
  seen.length = 0;

  const result = await fleet.reject('squatter-1');
  t.equal(result.device.state, 'revoked', 'out of the claim queue');
  t.same(result.revoked, [issued.serial], 'its claim-mode certificate is revoked');
  t.equal((await ca.inventory.certificate(issued.serial))?.status, 'revoked');
  t.equal((await ca.inventory.revocation(issued.serial))?.reason, 'privilegeWithdrawn');
  const crl = join(dir, 'check.crl');
  writeFileSync(crl, await ca.currentCrl());
  const text = openssl(['crl', '-inform', 'DER', '-in', crl, '-noout', '-text']).toString().replace(/[\s:]/g, '').toLowerCase();
  t.ok(text.includes(issued.serial.toLowerCase()), 'the CRL lists it (the broker refuses and disconnects it)');
  t.match((await ca.inventory.auditEntries({ device: 'squatter-1' })).at(-1), { actor: 'session:operator:olga', action: 'device.reject', outcome: 'ok', detail: `revoked ${issued.serial}` }, 'audited with who did it');

  await view.refresh();
  t.equal(view.deviceState('squatter-1'), 'revoked', 'the view follows');
  t.equal(seen.length, 1, 'one fleet event');
  t.match(seen[0], { type: 'revoked', device: 'squatter-1', text: /^rejected \(never claimed\)/ }, 'saying it was rejected');

  await t.rejects(ca.enrollUnclaimed(makeCsr(dir, '/CN=squatter-1').der), { status: 401, message: /already enrolled/ }, 'the id cannot be squatted again without credentials');
  await ca.enrollWithToken('squatter-1', (await ca.createToken('squatter-1')).token, makeCsr(dir, '/CN=squatter-1').der);
  t.equal((await ca.inventory.device('squatter-1'))?.state, 'active', 'the real device enrolls the id with a token');

  await t.rejects(fleet.reject('good-1'), { status: 409, message: /active, not unclaimed/ }, 'an active device is revoked, not rejected');
  t.equal((await ca.inventory.device('good-1'))?.state, 'active', 'and nothing changed');
  t.match((await ca.inventory.auditEntries({ device: 'good-1' })).at(-1), { action: 'device.reject', outcome: 'refused' }, 'the refusal is audited');
  await t.rejects(fleet.reject('ghost'), { status: 404 });
});
