/**
 * Who is on the other end of a TLS connection, from its (chain-verified) peer certificate. A device certificate
 * must carry CN = device id and the SAN URI urn:wott:device:{same id}; a service certificate CN = {role}:{name} and
 * SAN URI urn:wott:service:{role}:{name}. Anything else is refused.
 */
import type { PeerCertificate } from 'node:tls';
import { isDeviceId, normalizeSerial, parseDeviceUri, parseServiceUri, serviceCommonName, type ServiceRole } from '../protocol/index.js';

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

/** The identity in a certificate, or a one-line reason why it does not name one. */
export function identityFromCertificate(cert: PeerCertificate): Identity | { error: string } {
  const cn = Array.isArray(cert.subject?.CN) ? undefined : cert.subject?.CN;
  if (!cn) return { error: 'certificate has no single subject CN' };
  const uris = sanUris(cert.subjectaltname);
  const serial = normalizeSerial(cert.serialNumber ?? '');
  const notAfter = Date.parse(cert.valid_to);
  if (isDeviceId(cn)) {
    const named = uris.map(parseDeviceUri).filter(Boolean);
    if (named.length !== 1 || named[0] !== cn) return { error: `certificate CN "${cn}" does not match its SAN URI` };
    return { kind: 'device', id: cn, serial, notAfter };
  }
  const services = uris.map(parseServiceUri).filter((s) => s !== undefined);
  if (services.length === 1 && serviceCommonName(services[0]!.role, services[0]!.name) === cn) {
    return { kind: 'service', role: services[0]!.role, name: services[0]!.name, id: cn, serial, notAfter };
  }
  return { error: `certificate CN "${String(cn).slice(0, 80)}" is neither a device id nor a service identity` };
}
