/**
 * The packet guard against hostile byte streams: oversized and malformed lengths, ill-formed UTF-8 and U+0000 in
 * every string it checks, and every packet split at every byte boundary (TLS records arrive in any size).
 */
import t from 'tap';
import mqttPacket from 'mqtt-packet';
import { PacketGuard, isMqttString } from '../broker/packet-guard.js';

const gen = (p: object) => mqttPacket.generate(p as mqttPacket.Packet);
const connect = (extra: object = {}) => gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'dev-1', keepalive: 30, ...extra });
const publish = (topic: string | Buffer, payload: Buffer | string = 'x', qos: 0 | 1 = 0) => gen({ cmd: 'publish', topic, payload, qos, messageId: qos ? 7 : undefined, retain: false, dup: false });

/** A PUBLISH whose topic is the given raw bytes (mqtt-packet would encode a string as UTF-8). */
function rawPublish(topic: Buffer, payload = Buffer.from('p')): Buffer {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 255]), topic, payload]);
  return Buffer.concat([Buffer.from([0x30]), encodeLength(body.length), body]);
}
function rawPacket(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), encodeLength(body.length), body]);
}
function encodeLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
const str = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);

/** Feeds `stream` in every split into two chunks (and byte by byte); all must agree with one whole feed. */
function verdictAllSplits(stream: Buffer, max = 1024): string | undefined {
  const whole = new PacketGuard(max).feed(stream);
  for (let cut = 1; cut < stream.length; cut++) {
    const g = new PacketGuard(max);
    const v = g.feed(stream.subarray(0, cut)) ?? g.feed(stream.subarray(cut));
    if (v !== whole) throw new Error(`split at ${cut}: ${v} vs ${whole}`);
  }
  const g = new PacketGuard(max);
  let v: string | undefined;
  for (let i = 0; i < stream.length && !v; i++) v = g.feed(stream.subarray(i, i + 1));
  if (v !== whole) throw new Error(`byte by byte: ${v} vs ${whole}`);
  return whole;
}

const BAD_UTF8: Array<[string, Buffer]> = [
  ['lone continuation byte', Buffer.from([0x61, 0x80])],
  ['truncated sequence', Buffer.from([0x61, 0xe2, 0x82])],
  ['overlong slash', Buffer.from([0xc0, 0xaf])],
  ['encoded surrogate U+D800', Buffer.from([0xed, 0xa0, 0x80])],
  ['beyond U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ['0xFF byte', Buffer.from([0x77, 0xff])],
  ['NUL', Buffer.from('wea\u0000ther')],
];

t.test('well-formed traffic passes, split anywhere', async (t) => {
  const stream = Buffer.concat([
    connect({ will: { topic: 'devices/dev-1/will', payload: Buffer.from([0xff, 0]), qos: 0, retain: false }, username: 'ünïcode', password: Buffer.from([0, 0xff]) }),
    publish('weather/kitchen', Buffer.from([0, 0xff, 0xfe])), // binary payloads are not strings
    publish('weather/\u{1F321}/\uFFFD', 'a real U+FFFD is fine', 1),
    gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/#', qos: 1 }, { topic: 'devices/+/x', qos: 0 }] }),
    gen({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['weather/#'] }),
    gen({ cmd: 'pingreq' }),
    gen({ cmd: 'disconnect' }),
  ]);
  t.equal(verdictAllSplits(stream), undefined);
  const g = new PacketGuard(1024);
  g.feed(stream);
  t.equal(g.packets, 7, 'every packet counted');
});

t.test('a payload that looks like a topic is not checked as one when its packet continues in the next chunk', async (t) => {
  // A chunk that starts inside a payload whose bytes read as a topic length (2) and an ill-formed topic (0xC3 0x28):
  // the cluster bench's binary payloads hit this at high rates, and the connection was closed as malformed.
  const stream = Buffer.concat([publish('weather/kitchen', Buffer.from([0x00, 0x02, 0xc3, 0x28, 0x00, 0x01, 0xff, 0x61])), publish('weather/x', 'next')]);
  t.equal(verdictAllSplits(stream), undefined, 'no split makes the payload a topic');
});

t.test('oversized packets are refused from their length alone, before the body arrives', async (t) => {
  const g = new PacketGuard(1000);
  const header = Buffer.concat([Buffer.from([0x30]), encodeLength(250 * 1024 * 1024)]);
  t.match(g.feed(header), /250\b|262144000 bytes exceeds the maximum packet size \(1000 bytes\)/);
  t.ok(g.violation, 'sticky');
  t.equal(g.feed(Buffer.alloc(10)), g.violation, 'nothing more is read');
  t.equal(verdictAllSplits(publish('w/x', Buffer.alloc(996)), 1000), 'packet of 1001 bytes exceeds the maximum packet size (1000 bytes)');
  t.equal(verdictAllSplits(publish('w/x', Buffer.alloc(995)), 1000), undefined, 'exactly the maximum (remaining length) is fine');
  // Every packet type is bounded, not only PUBLISH.
  for (const first of [0x10, 0x82, 0xa2, 0xc0, 0xe0, 0xf0, 0x00]) {
    t.match(new PacketGuard(100).feed(Buffer.concat([Buffer.from([first]), encodeLength(101)])), /exceeds/, `type 0x${first.toString(16)}`);
  }
});

t.test('a remaining length of more than 4 bytes is malformed', async (t) => {
  t.match(verdictAllSplits(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), MQTT_MAX), /malformed remaining length/);
  t.equal(new PacketGuard(MQTT_MAX).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])), undefined, 'the largest encodable length is a length');
});
const MQTT_MAX = 268_435_455;

t.test('ill-formed UTF-8 and U+0000 close the connection, in every string the guard checks', async (t) => {
  for (const [name, bad] of BAD_UTF8) {
    t.notOk(isMqttString(bad), name);
    const topic = Buffer.concat([Buffer.from('weather/'), bad]);
    t.match(verdictAllSplits(rawPublish(topic)), /PUBLISH topic/, `PUBLISH topic: ${name}`);
    const sub = rawPacket(0x82, Buffer.concat([Buffer.from([0, 1]), str(Buffer.from('ok/#')), Buffer.from([0]), str(topic), Buffer.from([1])]));
    t.match(verdictAllSplits(sub), /SUBSCRIBE topic filter/, `SUBSCRIBE: ${name}`);
    const unsub = rawPacket(0xa2, Buffer.concat([Buffer.from([0, 1]), str(topic)]));
    t.match(verdictAllSplits(unsub), /UNSUBSCRIBE topic filter/, `UNSUBSCRIBE: ${name}`);
    const head = Buffer.concat([str(Buffer.from('MQTT')), Buffer.from([4])]);
    const id = (b: Buffer) => rawPacket(0x10, Buffer.concat([head, Buffer.from([0x02, 0, 30]), str(b)]));
    t.match(verdictAllSplits(id(bad)), /client id/, `CONNECT client id: ${name}`);
    const will = rawPacket(0x10, Buffer.concat([head, Buffer.from([0x06, 0, 30]), str(Buffer.from('d')), str(topic), str(Buffer.from([0xff]))]));
    t.match(verdictAllSplits(will), /will topic/, `CONNECT will topic: ${name}`);
    const user = rawPacket(0x10, Buffer.concat([head, Buffer.from([0x82, 0, 30]), str(Buffer.from('d')), str(bad)]));
    t.match(verdictAllSplits(user), /user name/, `CONNECT user name: ${name}`);
  }
  // A bad string in a later packet of a good stream is found too.
  t.match(verdictAllSplits(Buffer.concat([connect(), publish('weather/ok'), rawPublish(Buffer.from([0x77, 0xc3]))])), /PUBLISH topic/);
});

t.test('truncated and inconsistent bodies are left to mqtt-packet, never thrown on', async (t) => {
  const cases = [
    rawPacket(0x30, Buffer.from([0xff, 0xff, 0x61])), // topic length beyond the packet
    rawPacket(0x30, Buffer.from([0x00])), // one byte of topic length
    rawPacket(0x30, Buffer.alloc(0)),
    rawPacket(0x10, Buffer.from([0, 4, 0x4d, 0x51])), // CONNECT cut inside the protocol name
    rawPacket(0x10, Buffer.concat([str(Buffer.from('MQTT')), Buffer.from([4, 0x04, 0, 30]), str(Buffer.from('d')), Buffer.from([0, 9])])),
    rawPacket(0x82, Buffer.from([0, 1, 0, 200, 0x61])),
    rawPacket(0x82, Buffer.alloc(0)),
  ];
  for (const c of cases) t.doesNotThrow(() => verdictAllSplits(c));
  // Random garbage: never a throw, and the verdict never depends on how the bytes were split.
  let seed = 42;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  for (let k = 0; k < 300; k++) {
    const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
    t.doesNotThrow(() => verdictAllSplits(junk, 64), `junk ${junk.toString('hex')}`);
  }
});

t.test('a PUBLISH topic is checked up to its own end, never into the payload that follows it', async (t) => {
  // The guard checks small PUBLISH topics in place in the read chunk: NUL and bytes that are not UTF-8 in the payload
  // (anything goes there) must not count against the topic, whether it is ASCII or not.
  const payload = Buffer.from([0, 0xff, 0xc0, 0xed, 0xa0, 0x80]);
  t.equal(verdictAllSplits(rawPublish(Buffer.from('weather/ok'), payload)), undefined, 'ASCII topic');
  t.equal(verdictAllSplits(rawPublish(Buffer.from('wetter/müll'), payload)), undefined, 'non-ASCII topic');
  t.equal(verdictAllSplits(Buffer.concat([rawPublish(Buffer.from('a'), payload), rawPublish(Buffer.from('b/ü'), payload)])), undefined, 'two in one chunk');
  t.match(verdictAllSplits(rawPublish(Buffer.from('wetter/m\u00fcll\u0000'), payload)), /PUBLISH topic/, 'a NUL after a non-ASCII character');
  t.match(verdictAllSplits(rawPublish(Buffer.from([0x61, 0xc3]), Buffer.from([0xbc]))), /PUBLISH topic/, 'a sequence the payload would complete');
});
