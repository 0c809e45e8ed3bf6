/** Listening TCP/UDP sockets from /proc/net, with the owning process where /proc lets us see it. */
import type { ListeningSocket } from '../../protocol/index.js';
import { clip, listDir, readLine, readLink, readText, under } from './fs.js';

const MAX_SOCKETS = 1024;
const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

/** Hex IPv4 from /proc/net: one 32-bit word in host (little-endian) order. */
export function decodeIpv4(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  const b = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return b.join('.');
}

/** Hex IPv6 from /proc/net: four 32-bit words, each little-endian. */
export function decodeIpv6(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (const i of [6, 4, 2, 0]) bytes.push(parseInt(word.slice(i, i + 2), 16));
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // IPv4-mapped addresses read better in dotted form.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  return compressIpv6(groups);
}

/** RFC 5952 text: the longest run (>= 2) of zero groups becomes "::". */
function compressIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

interface RawSocket {
  protocol: ListeningSocket['protocol'];
  address: string;
  port: number;
  inode: string;
}

/** Parses one /proc/net/{tcp,tcp6,udp,udp6} table; malformed lines are skipped. */
export function parseProcNet(text: string, protocol: ListeningSocket['protocol']): RawSocket[] {
  const v6 = protocol.endsWith('6');
  const tcp = protocol.startsWith('tcp');
  const out: RawSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const [localHex, localPortHex] = f[1]!.split(':');
    const [remoteHex, remotePortHex] = f[2]!.split(':');
    const state = f[3]!.toUpperCase();
    const inode = f[9]!;
    if (!localHex || !localPortHex || !remoteHex || !remotePortHex || !/^\d+$/.test(inode)) continue;
    if (!/^[0-9A-Fa-f]{4}$/.test(localPortHex) || !/^[0-9A-Fa-f]{4}$/.test(remotePortHex)) continue;
    if (tcp) {
      if (state !== TCP_LISTEN) continue;
    } else if (state !== UDP_UNCONNECTED || !/^0+$/.test(remoteHex) || !/^0+$/.test(remotePortHex)) {
      // Connected UDP sockets are clients, not services.
      continue;
    }
    const address = v6 ? decodeIpv6(localHex) : decodeIpv4(localHex);
    if (address === undefined) continue;
    out.push({ protocol, address, port: parseInt(localPortHex, 16), inode });
  }
  return out;
}

/** Maps socket inodes to process names by reading /proc/[pid]/fd/* links ("socket:[inode]"). */
export function socketOwners(root: string, wanted: Set<string>): Map<string, string> {
  const owners = new Map<string, string>();
  if (wanted.size === 0) return owners;
  for (const pid of listDir(under(root, 'proc'))) {
    if (!/^\d+$/.test(pid)) continue;
    let comm: string | undefined;
    for (const fd of listDir(under(root, 'proc', pid, 'fd'))) {
      if (!/^\d+$/.test(fd)) continue;
      const m = /^socket:\[(\d+)\]$/.exec(readLink(under(root, 'proc', pid, 'fd', fd)) ?? '');
      if (!m || !wanted.has(m[1]!) || owners.has(m[1]!)) continue;
      comm ??= readLine(under(root, 'proc', pid, 'comm'), 256) ?? '';
      if (comm) owners.set(m[1]!, clip(comm, 64));
    }
    if (owners.size === wanted.size) break;
  }
  return owners;
}

export function collectListening(root: string): ListeningSocket[] {
  const raw: RawSocket[] = [];
  for (const protocol of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    const text = readText(under(root, 'proc/net', protocol));
    if (text !== undefined) raw.push(...parseProcNet(text, protocol));
  }
  const owners = socketOwners(root, new Set(raw.filter((s) => s.inode !== '0').map((s) => s.inode)));
  // SO_REUSEPORT and forked servers give duplicate rows: one entry per protocol/address/port.
  const seen = new Map<string, ListeningSocket>();
  for (const s of raw) {
    const key = `${s.protocol} ${s.address} ${s.port}`;
    const process = owners.get(s.inode);
    const prev = seen.get(key);
    if (prev) {
      if (prev.process === undefined && process !== undefined) prev.process = process;
      continue;
    }
    const entry: ListeningSocket = { protocol: s.protocol, address: s.address, port: s.port };
    if (process !== undefined) entry.process = process;
    seen.set(key, entry);
  }
  const order = { tcp: 0, tcp6: 1, udp: 2, udp6: 3 };
  return [...seen.values()]
    .sort((a, b) => order[a.protocol] - order[b.protocol] || a.port - b.port || a.address.localeCompare(b.address))
    .slice(0, MAX_SOCKETS);
}
