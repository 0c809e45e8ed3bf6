/**
 * Who is on the other end of a TLS connection, from its (chain-verified) peer certificate. A device certificate
 * must carry CN = device id and the SAN URI urn:wott:device:{same id}; a service certificate CN = {role}:{name} and
 * SAN URI urn:wott:service:{role}:{name}. Anything else is refused.
 */
import type { X509Certificate } from 'node:crypto';
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

/**
 * The subject's CN when the subject has exactly one, from X509Certificate's subject text: one RDN per line, the
 * attributes of a multi-valued RDN joined by " + ", values escaped per RFC 2253 and for control characters (so a
 * separator inside a value is escaped and never splits it; no valid identity contains a character that is escaped).
 */
export function singleCn(cert: X509Certificate): string | undefined {
  const cns = cert.subject
    .split('\n')
    .flatMap((rdn) => rdn.split(' + '))
    .filter((attribute) => attribute.startsWith('CN='));
  return cns.length === 1 ? cns[0]!.slice(3) : undefined;
}

/**
 * identityFromCertificate for the object `getPeerX509Certificate()` returns. The broker reads identities this way on
 * every connection: getPeerCertificate() builds every field of the certificate up front (three fingerprints, the
 * public key, the issuer), which was ~5 % of the gateway's CPU in a 2,000-device connect ramp; X509Certificate reads
 * only the four fields asked for.
 */
export function identityFromX509(cert: X509Certificate): Identity | { error: string } {
  const cn = singleCn(cert);
  if (!cn) return { error: 'certificate has no single subject CN' };
  const named = identityFromNames(cn, sanUris(cert.subjectAltName));
  if ('error' in named) return named;
  return { ...named, serial: normalizeSerial(cert.serialNumber), notAfter: Date.parse(cert.validTo) };
}
