/**
 * The soak and scale benchmarks' baseline, run as a process of its own (so its RSS and descriptors are its alone):
 * plain Aedes behind node:tls with the gateway's server certificate and TLS settings, and no hooks at all.
 * `node soak-aedes.js KEY CERT CA [PORT]` prints `{"port":N}` once it listens on 127.0.0.1 (PORT, or a free one: a
 * fixed port lets the scale benchmark restart it where its devices reconnect) and stops on SIGTERM. On SIGUSR2 it
 * prints `{"loopP99Ms":X}`, the event-loop delay p99 since the last SIGUSR2 (what the gateway's metrics report).
 */
import { Aedes } from 'aedes';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createServer, type TLSSocket } from 'node:tls';

const [keyPath, certPath, caPath, portArg] = process.argv.slice(2);
if (!keyPath || !certPath || !caPath) {
  process.stderr.write('usage: soak-aedes KEY CERT CA [PORT]\n');
  process.exit(2);
}
// The resolution prom-client uses for the gateway's figure.
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
process.on('SIGUSR2', () => {
  process.stdout.write(JSON.stringify({ loopP99Ms: loop.percentile(99) / 1e6 }) + '\n');
  loop.reset();
});
const broker = await Aedes.createBroker();
const server = createServer(
  { key: readFileSync(keyPath), cert: readFileSync(certPath), ca: readFileSync(caPath), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
  (socket: TLSSocket) => broker.handle(socket),
);
server.on('tlsClientError', () => undefined);
server.listen(Number(portArg ?? 0), '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n'));
process.once('SIGTERM', () => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
