/**
 * Who is on the other end of a TLS connection, from its (chain-verified) peer certificate. A device certificate
 * must carry CN = device id and the SAN URI urn:wott:device:{same id}; a service certificate CN = {role}:{name} and
 * SAN URI urn:wott:service:{role}:{name}. Anything else is refused.
 */
import type { PeerCertificate } from 'node:tls';
import { identityFromNames, normalizeSerial, type ServiceRole } from '../protocol/index.js';

export type Identity =
  | { kind: 'device'; id: string; serial: string; notAfter: number }
  | { kind: 'service'; role: ServiceRole; name: string; id: string; serial: string; notAfter: number };

function sanUris(altNames: string | undefined): string[] {
  if (!altNames) return [];
  return altNames
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

/** The identity in a certificate, or a one-line reason why it does not name one (the rules: protocol/identity.ts). */
export function identityFromCertificate(cert: PeerCertificate): Identity | { error: string } {
  const cn = Array.isArray(cert.subject?.CN) ? undefined : cert.subject?.CN;
  if (!cn) return { error: 'certificate has no single subject CN' };
  const named = identityFromNames(cn, sanUris(cert.subjectaltname));
  if ('error' in named) return named;
  return { ...named, serial: normalizeSerial(cert.serialNumber ?? ''), notAfter: Date.parse(cert.valid_to) };
}
