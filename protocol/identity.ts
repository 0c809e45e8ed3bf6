/**
 * Who a certificate names, from its subject CN and SAN URIs: a device (CN = device id, exactly one SAN URI
 * urn:wott:device:{same id}) or a service (CN = {role}:{name}, exactly one SAN URI urn:wott:service:{role}:{name}).
 * Anything else names nobody.
 */
import { isDeviceId, parseDeviceUri } from './device-id.js';
import { parseServiceUri, serviceCommonName, type ServiceRole } from './service-id.js';

export type CertificateIdentity = { kind: 'device'; id: string } | { kind: 'service'; role: ServiceRole; name: string; id: string };

/** The identity a certificate's CN and SAN URIs name together, or a one-line reason why they name none. */
export function identityFromNames(cn: string, uris: readonly string[]): CertificateIdentity | { error: string } {
  if (isDeviceId(cn)) {
    const named = uris.map(parseDeviceUri).filter(Boolean);
    if (named.length !== 1 || named[0] !== cn) return { error: `certificate CN "${cn}" does not match its SAN URI` };
    return { kind: 'device', id: cn };
  }
  const services = uris.map(parseServiceUri).filter((s) => s !== undefined);
  if (services.length === 1 && serviceCommonName(services[0]!.role, services[0]!.name) === cn) {
    return { kind: 'service', role: services[0]!.role, name: services[0]!.name, id: cn };
  }
  return { error: `certificate CN "${String(cn).slice(0, 80)}" is neither a device id nor a service identity` };
}
