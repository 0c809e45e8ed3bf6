/**
 * Watches the MQTT byte stream of one connection as the broker reads it, before mqtt-packet sees a byte.
 *
 * Why here and not in a hook: Aedes 1.2 has no maximum packet size, and mqtt-packet buffers a whole packet before
 * any hook runs (a 250 MB publish to a denied topic was buffered whole); and mqtt-packet decodes strings with
 * U+FFFD replacement, so by the time a hook sees a topic, ill-formed UTF-8 can no longer be told from a real
 * U+FFFD. So the guard reads the fixed headers itself and:
 * - refuses a packet whose declared remaining length exceeds `maxPacketBytes`, as soon as the length is read;
 * - refuses a remaining length longer than 4 bytes (MQTT 3.1.1 §2.2.3);
 * - refuses ill-formed UTF-8 or U+0000 in the strings devices send (CONNECT client id, will topic and user name;
 *   PUBLISH topic; SUBSCRIBE and UNSUBSCRIBE filters): MQTT 3.1.1 §1.5.3 says the connection MUST be closed.
 * Everything else (packet types, flags, lengths inside the body) is left to mqtt-packet, which closes the
 * connection on errors of its own. Pure logic: no I/O, O(1) per packet header, strings checked with isUtf8.
 */
import { isUtf8 } from 'node:buffer';

const CONNECT = 1;
const PUBLISH = 3;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;
/** The largest remaining length MQTT can encode (4 bytes of 7 bits). */
export const MQTT_MAX_REMAINING_LENGTH = 268_435_455;

const enum Phase {
  Header,
  Length,
  Body,
}

/** A string MQTT accepts: well-formed UTF-8 (no surrogates, no overlongs) without U+0000. */
export function isMqttString(bytes: Buffer): boolean {
  return isMqttStringIn(bytes, 0, bytes.length);
}

/**
 * isMqttString over bytes [start, end) of `buf`. Topics are short and nearly always ASCII: a loop over them in place
 * is cheaper than two calls into C++, and than the Buffer view a subarray would allocate on every PUBLISH.
 */
export function isMqttStringIn(buf: Buffer, start: number, end: number): boolean {
  let i = start;
  for (; i < end; i++) {
    const b = buf[i]!;
    if (b === 0) return false;
    if (b >= 0x80) break;
  }
  if (i === end) return true;
  // What precedes is ASCII, so no UTF-8 sequence starts before i: the rest is checked on its own.
  const rest = buf.subarray(i, end);
  return rest.indexOf(0) === -1 && isUtf8(rest);
}

export class PacketGuard {
  private phase = Phase.Header;
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  /** Body bytes still to come for the current packet. */
  private remaining = 0;
  /** Body bytes of the current packet to keep for string checks (0 = none), and what has been kept so far. */
  private want = 0;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  /** Set once a violation was found: the connection is to be closed, nothing more is read. */
  violation: string | undefined;
  packets = 0;

  constructor(readonly maxPacketBytes: number) {}

  /** Inspects the next chunk of the stream; returns the reason to close the connection, if any. */
  feed(chunk: Buffer): string | undefined {
    if (this.violation) return this.violation;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.phase) {
        case Phase.Header:
          this.type = chunk[i++]! >> 4;
          this.phase = Phase.Length;
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          // Fast path: a one-byte length (packets under 128 bytes) and a small PUBLISH wholly in this chunk.
          if (i < n && chunk[i]! < 0x80) {
            const length = chunk[i++]!;
            this.length = length;
            this.lengthBytes = 1;
            if (length > this.maxPacketBytes) return this.fail(`packet of ${length} bytes exceeds the maximum packet size (${this.maxPacketBytes} bytes)`);
            if (this.type === PUBLISH && length >= 2 && i + length <= n) {
              const end = i + 2 + chunk.readUInt16BE(i);
              if (end <= i + length) {
                if (end > i + 2 && !isMqttStringIn(chunk, i + 2, end)) return this.fail('PUBLISH topic is not well-formed UTF-8 without U+0000');
                i += length;
                this.packets++;
                this.phase = Phase.Header;
                break;
              }
            }
            this.startBody();
          }
          break;
        case Phase.Length: {
          const byte = chunk[i++]!;
          this.length += (byte & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.lengthBytes++;
          if (byte & 0x80) {
            if (this.lengthBytes === 4) return this.fail('malformed remaining length (more than 4 bytes)');
            break;
          }
          if (this.length > this.maxPacketBytes) {
            return this.fail(`packet of ${this.length} bytes exceeds the maximum packet size (${this.maxPacketBytes} bytes)`);
          }
          this.startBody();
          break;
        }
        case Phase.Body: {
          // Only at the start of the body: a later chunk of the same packet starts inside its payload.
          if (this.type === PUBLISH && this.keptBytes === 0 && this.remaining === this.length) {
            const end = this.publishTopicInPlace(chunk, i);
            if (end >= 0) {
              if (end > i + 2 && !isMqttStringIn(chunk, i + 2, end)) return this.fail('PUBLISH topic is not well-formed UTF-8 without U+0000');
              this.want = 0; // checked: skip the rest of the packet
            }
          }
          if (this.want > this.keptBytes) {
            // want never exceeds the packet's length, so what is kept is always part of this packet
            const keep = Math.min(this.want - this.keptBytes, n - i);
            this.kept.push(chunk.subarray(i, i + keep));
            this.keptBytes += keep;
            this.remaining -= keep;
            i += keep;
            if (this.keptBytes === this.want) {
              const problem = this.inspect();
              if (problem) return this.fail(problem);
            }
          } else {
            const skip = Math.min(this.remaining, n - i);
            this.remaining -= skip;
            i += skip;
          }
          if (this.remaining === 0) this.endPacket();
          break;
        }
      }
    }
    return undefined;
  }

  /**
   * The common case, without copying: a PUBLISH whose topic lies wholly in the chunk at `i` is checked in place.
   * Returns the topic's end offset in the chunk when it did so, -1 when the general path must keep bytes.
   */
  private publishTopicInPlace(chunk: Buffer, i: number): number {
    if (this.length < 2 || chunk.length - i < 2) return -1;
    const end = i + 2 + chunk.readUInt16BE(i);
    if (end > chunk.length || end - i > this.length) return -1;
    return end;
  }

  private startBody(): void {
    this.remaining = this.length;
    // PUBLISH: first the topic length (2 bytes), then the topic; the others: the whole (bounded) body.
    this.want = this.type === PUBLISH ? Math.min(2, this.length) : this.type === CONNECT || this.type === SUBSCRIBE || this.type === UNSUBSCRIBE ? this.length : 0;
    if (this.remaining === 0) this.endPacket();
    else this.phase = Phase.Body;
  }

  private endPacket(): void {
    this.packets++;
    if (this.keptBytes > 0) {
      this.kept = [];
      this.keptBytes = 0;
    }
    this.want = 0;
    this.phase = Phase.Header;
  }

  private fail(reason: string): string {
    this.violation = reason;
    this.kept = [];
    return reason;
  }

  /** Runs when `want` body bytes are kept; may raise `want` (a PUBLISH topic after its length). */
  private inspect(): string | undefined {
    const body = this.kept.length === 1 ? this.kept[0]! : Buffer.concat(this.kept, this.keptBytes);
    if (this.kept.length > 1) this.kept = [body];
    switch (this.type) {
      case PUBLISH: {
        if (this.want === 2 && this.length >= 2) {
          const topicEnd = Math.min(this.length, 2 + body.readUInt16BE(0));
          if (topicEnd > 2) {
            this.want = topicEnd;
            return undefined;
          }
          return undefined; // an empty topic: mqtt-packet / Aedes refuse it
        }
        return isMqttString(body.subarray(2, this.want)) ? undefined : 'PUBLISH topic is not well-formed UTF-8 without U+0000';
      }
      case SUBSCRIBE:
      case UNSUBSCRIBE:
        return checkFilters(body, this.type === SUBSCRIBE);
      case CONNECT:
        return checkConnect(body);
    }
    return undefined;
  }
}

/** Reads a length-prefixed string at `at`; undefined when it runs past the end (mqtt-packet reports that). */
function stringAt(body: Buffer, at: number): { bytes: Buffer; next: number } | undefined {
  if (at + 2 > body.length) return undefined;
  const end = at + 2 + body.readUInt16BE(at);
  if (end > body.length) return undefined;
  return { bytes: body.subarray(at + 2, end), next: end };
}

function checkFilters(body: Buffer, withQos: boolean): string | undefined {
  let at = 2; // packet identifier
  while (at < body.length) {
    const s = stringAt(body, at);
    if (!s) return undefined;
    if (!isMqttString(s.bytes)) return `${withQos ? 'SUBSCRIBE' : 'UNSUBSCRIBE'} topic filter is not well-formed UTF-8 without U+0000`;
    at = s.next + (withQos ? 1 : 0);
  }
  return undefined;
}

function checkConnect(body: Buffer): string | undefined {
  const protocol = stringAt(body, 0);
  if (!protocol || protocol.next + 4 > body.length) return undefined;
  const flags = body[protocol.next + 1]!;
  let at = protocol.next + 4; // level, flags, keep-alive
  const clientId = stringAt(body, at);
  if (!clientId) return undefined;
  if (!isMqttString(clientId.bytes)) return 'CONNECT client id is not well-formed UTF-8 without U+0000';
  at = clientId.next;
  if (flags & 0x04) {
    const willTopic = stringAt(body, at);
    if (!willTopic) return undefined;
    if (!isMqttString(willTopic.bytes)) return 'CONNECT will topic is not well-formed UTF-8 without U+0000';
    const willMessage = stringAt(body, willTopic.next);
    if (!willMessage) return undefined;
    at = willMessage.next;
  }
  if (flags & 0x80) {
    const user = stringAt(body, at);
    if (user && !isMqttString(user.bytes)) return 'CONNECT user name is not well-formed UTF-8 without U+0000';
  }
  return undefined;
}
