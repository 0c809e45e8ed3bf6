/** A raw MQTT client over real TLS, for sending what well-behaved libraries refuse to send. */
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

export interface RawClient {
  socket: TLSSocket;
  packets: mqttPacket.Packet[];
  closed: Promise<void>;
  send(packet: Record<string, unknown> | Buffer): boolean;
  /** Resolves with the first packet of `cmd` (or undefined when the connection closes first). */
  next(cmd: string): Promise<mqttPacket.Packet | undefined>;
}

/** Opens a TLS connection (optionally from another loopback address) and parses what the broker sends. */
export function rawClient(port: number, creds: { key?: string; cert?: string; ca: string }, localAddress = '127.0.0.1'): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    // localAddress is passed on to net.connect (not in tls' typings): a loopback address per party.
    const options: ConnectionOptions & { localAddress: string } = { host: '127.0.0.1', port, servername: 'localhost', localAddress, key: creds.key, cert: creds.cert, ca: creds.ca };
    const socket = tlsConnect(options);
    const packets: mqttPacket.Packet[] = [];
    const waiters: Array<() => void> = [];
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      packets.push(p);
      for (const w of waiters.splice(0)) w();
    });
    parser.on('error', () => socket.destroy());
    socket.on('data', (d: Buffer) => parser.parse(d));
    const closed = new Promise<void>((r) => socket.once('close', () => {
      for (const w of waiters.splice(0)) w();
      r();
    }));
    socket.on('error', () => {});
    socket.once('secureConnect', () =>
      resolve({
        socket,
        packets,
        closed,
        send: (p) => (socket.destroyed ? false : socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p as unknown as mqttPacket.Packet))),
        next: (cmd) =>
          new Promise((r) => {
            const check = () => {
              const found = packets.find((p) => p.cmd === cmd);
              if (found || socket.destroyed) return r(found);
              waiters.push(check);
            };
            check();
          }),
      }),
    );
    socket.once('error', reject);
  });
}

export const connectPacket = (clientId: string, extra: Record<string, unknown> = {}) => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId,
  keepalive: 60,
  ...extra,
});

/** A plain TCP connection that says nothing. */
export function idleSocket(port: number, localAddress = '127.0.0.1'): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}
