/**
 * Source versions for this host's inventory. The shared dpkg status parser (agent/collectors/packages.ts) keeps
 * the Source name but drops its version, which dpkg records as "Source: name (version)" whenever it differs from
 * the binary's (binNMUs "+bN", binaries with their own epoch such as bsdutils 1:2.38.1-… from util-linux 2.38.1-…,
 * or their own version such as dmsetup from lvm2). Matching is exact only with the source version, so the CLI
 * adds it here; telemetry does not carry it yet (see match.ts for the fallback).
 */
import { parseDpkgStatus } from '../../agent/collectors/packages.js';
import type { InventoryEntry } from './match.js';

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

/** Installed packages of a dpkg status file, each with its source version (the binary's own when dpkg lists none). */
export function inventoryFromDpkgStatus(statusText: string, truncated = false): InventoryEntry[] {
  const versions = sourceVersionsByBinary(statusText);
  return parseDpkgStatus(statusText, truncated).map((p) => ({ ...p, sourceVersion: versions.get(`${p.name} ${p.version}`) ?? p.version }));
}
