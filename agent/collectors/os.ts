/** OS release, kernel release and uptime. */
import { clip, readLine, readText, under } from './fs.js';

export interface OsInfo {
  id: string;
  versionId?: string;
  versionCodename?: string;
  prettyName?: string;
}

/** Parses os-release(5): KEY=value with shell-style quoting. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!;
    let value = m[2]!;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(/\\([$"`\\])/g, '$1');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    if (!(key in out)) out[key] = value;
  }
  return out;
}

export function collectOs(root: string): OsInfo {
  // etc/os-release takes precedence; usr/lib/os-release is the fallback (os-release(5)).
  const text = readText(under(root, 'etc/os-release'), 64 * 1024) ?? readText(under(root, 'usr/lib/os-release'), 64 * 1024);
  const fields = text === undefined ? {} : parseOsRelease(text);
  const pick = (k: string): string | undefined => {
    const v = fields[k];
    return v ? clip(v, 256) : undefined;
  };
  const info: OsInfo = { id: pick('ID') ?? 'linux' }; // "linux" is the spec's default ID
  const versionId = pick('VERSION_ID');
  const versionCodename = pick('VERSION_CODENAME');
  const prettyName = pick('PRETTY_NAME');
  if (versionId !== undefined) info.versionId = versionId;
  if (versionCodename !== undefined) info.versionCodename = versionCodename;
  if (prettyName !== undefined) info.prettyName = prettyName;
  return info;
}

export function collectKernel(root: string): string | undefined {
  const line = readLine(under(root, 'proc/sys/kernel/osrelease'));
  return line ? clip(line, 256) : undefined;
}

export function collectUptime(root: string): number | undefined {
  const line = readLine(under(root, 'proc/uptime'));
  const first = line?.split(/\s+/)[0];
  if (!first || !/^\d+(\.\d+)?$/.test(first)) return undefined;
  const n = Number(first);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
