/** Service and operator identities: CN `{role}:{name}` and SAN URI urn:wott:service:{role}:{name}, built and parsed. */
import { assertDeviceId, isDeviceId } from './device-id.js';

const SERVICE_URI_PREFIX = 'urn:wott:service:';

/**
 * Roles for service and operator identities. A service certificate's CN is `{role}:{name}`; the colon can never
 * appear in a device id, so a service can never be mistaken for a device (or the other way round).
 */
export const SERVICE_ROLES = ['scoring', 'admin', 'broker'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

export function isServiceRole(value: unknown): value is ServiceRole {
  return typeof value === 'string' && (SERVICE_ROLES as readonly string[]).includes(value);
}

export function serviceCommonName(role: ServiceRole, name: string): string {
  assertDeviceId(name); // same character rules for the instance name
  return `${role}:${name}`;
}

export function serviceUri(role: ServiceRole, name: string): string {
  return `${SERVICE_URI_PREFIX}${role}:${assertDeviceId(name)}`;
}

export function parseServiceUri(uri: string): { role: ServiceRole; name: string } | undefined {
  if (!uri.startsWith(SERVICE_URI_PREFIX)) return undefined;
  const [role, name, ...rest] = uri.slice(SERVICE_URI_PREFIX.length).split(':');
  if (rest.length || !isServiceRole(role) || !isDeviceId(name)) return undefined;
  return { role, name };
}

/** The service named by a certificate CN `{role}:{name}`, or undefined when the CN is not a service identity. */
export function parseServiceCommonName(cn: string): { role: ServiceRole; name: string } | undefined {
  const [role, name, ...rest] = cn.split(':');
  if (rest.length || !isServiceRole(role) || !isDeviceId(name)) return undefined;
  return { role, name };
}
