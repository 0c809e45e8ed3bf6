/**
 * The soak benchmark's memory baseline, run as a process of its own (so its RSS and descriptors are its alone):
 * plain Aedes behind node:tls with the gateway's server certificate and TLS settings, and no hooks at all.
 * `node soak-aedes.js KEY CERT CA` prints `{"port":N}` once it listens on 127.0.0.1 and stops on SIGTERM.
 */
import { Aedes } from 'aedes';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

const [keyPath, certPath, caPath] = process.argv.slice(2);
if (!keyPath || !certPath || !caPath) {
  process.stderr.write('usage: soak-aedes KEY CERT CA\n');
  process.exit(2);
}
const broker = await Aedes.createBroker();
const server = createServer(
  { key: readFileSync(keyPath), cert: readFileSync(certPath), ca: readFileSync(caPath), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
  (socket: TLSSocket) => broker.handle(socket),
);
server.on('tlsClientError', () => undefined);
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n'));
process.once('SIGTERM', () => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
