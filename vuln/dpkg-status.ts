/**
 * dpkg's status file (/var/lib/dpkg/status): the installed packages, each with its source name and version. The
 * agent reports them in telemetry; `wott cve check` matches them here. Shared from vuln/ so that neither side
 * imports the other's folder (the agent imports this file alone, not vuln/index.ts, to stay clear of the SQLite
 * store).
 */
import type { PackageEntry } from '../protocol/index.js';
import type { InventoryEntry } from './match.js';

const NAME = /^[a-z0-9][a-z0-9+.-]*$/;
const VERSION = /^[A-Za-z0-9.+~:-]+$/;

/** Parses dpkg's status file; stanzas that are not installed or not well-formed are skipped. */
export function parseDpkgStatus(text: string, truncated = false): PackageEntry[] {
  const stanzas = text.split(/\n\s*\n/);
  // A cut-off last stanza may carry a cut-off version.
  if (truncated) stanzas.pop();
  const out: PackageEntry[] = [];
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      if (line.startsWith(' ') || line.startsWith('\t')) continue; // continuation (descriptions, conffiles)
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m && !fields.has(m[1]!.toLowerCase())) fields.set(m[1]!.toLowerCase(), m[2]!.trim());
    }
    if (fields.get('status') !== 'install ok installed') continue;
    const name = fields.get('package');
    const version = fields.get('version');
    if (!name || !version || name.length > 128 || version.length > 128 || !NAME.test(name) || !VERSION.test(version)) continue;
    // "Source: name (version)" when the source version differs from the binary's.
    const sourceField = fields.get('source') ?? '';
    const sourceName = sourceField.split(/\s+/)[0];
    const source = sourceName && sourceName.length <= 128 && NAME.test(sourceName) ? sourceName : name;
    // CVE data is keyed by source version; a binNMU (+b1) or a renamed binary carries its own version.
    const sourceVersion = /\(([^)\s]+)\)$/.exec(sourceField)?.[1];
    out.push(sourceVersion && sourceVersion !== version && sourceVersion.length <= 128 && VERSION.test(sourceVersion) ? { name, source, version, sourceVersion } : { name, source, version });
  }
  return out;
}

/** "name version" → source version, from the stanzas that carry "Source: name (version)". */
function sourceVersionsByBinary(statusText: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const stanza of statusText.split(/\n\s*\n/)) {
    let name: string | undefined;
    let version: string | undefined;
    let sourceVersion: string | undefined;
    for (const line of stanza.split('\n')) {
      if (name === undefined && line.startsWith('Package:')) name = line.slice(8).trim();
      else if (version === undefined && line.startsWith('Version:')) version = line.slice(8).trim();
      else if (sourceVersion === undefined && line.startsWith('Source:')) sourceVersion = /\(([^()\s]{1,128})\)\s*$/.exec(line)?.[1];
    }
    if (name && version && sourceVersion) out.set(`${name} ${version}`, sourceVersion);
  }
  return out;
}

/**
 * Installed packages of a dpkg status file, each with its source version (the binary's own when dpkg lists none).
 * Matching is exact only with the source version, which dpkg records as "Source: name (version)" whenever it
 * differs from the binary's (binNMUs "+bN", binaries with their own epoch such as bsdutils 1:2.38.1-… from
 * util-linux 2.38.1-…, or their own version such as dmsetup from lvm2); telemetry does not carry it yet (see
 * match.ts for the fallback), so the CLI adds it here.
 */
export function inventoryFromDpkgStatus(statusText: string, truncated = false): InventoryEntry[] {
  const versions = sourceVersionsByBinary(statusText);
  return parseDpkgStatus(statusText, truncated).map((p) => ({ ...p, sourceVersion: versions.get(`${p.name} ${p.version}`) ?? p.version }));
}
