/**
 * Operator identities: people and tools that manage the fleet over the HTTPS API. CN `operator:{role}:{name}` and
 * SAN URI urn:wott:operator:{role}:{name}, built and parsed. Kept apart from devices (a colon never appears in a
 * device id) and from services (their CN has exactly one colon, and their URI another prefix), so the broker, which
 * knows devices and services only, refuses an operator certificate on MQTT.
 */
import { assertDeviceId, isDeviceId } from './device-id.js';

const OPERATOR_URI_PREFIX = 'urn:wott:operator:';
const OPERATOR_CN_PREFIX = 'operator:';

/** In order of power: each role may do what the roles before it may. */
export const OPERATOR_ROLES = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export function isOperatorRole(value: unknown): value is OperatorRole {
  return typeof value === 'string' && (OPERATOR_ROLES as readonly string[]).includes(value);
}

/** True when `role` may do what `needed` may. */
export function roleAtLeast(role: OperatorRole, needed: OperatorRole): boolean {
  return OPERATOR_ROLES.indexOf(role) >= OPERATOR_ROLES.indexOf(needed);
}

export function operatorCommonName(role: OperatorRole, name: string): string {
  assertDeviceId(name); // same character rules as device ids: no colon, no spaces, lower case
  return `${OPERATOR_CN_PREFIX}${role}:${name}`;
}

export function operatorUri(role: OperatorRole, name: string): string {
  return `${OPERATOR_URI_PREFIX}${role}:${assertDeviceId(name)}`;
}

function parseRoleName(rest: string): { role: OperatorRole; name: string } | undefined {
  const [role, name, ...more] = rest.split(':');
  if (more.length || !isOperatorRole(role) || !isDeviceId(name)) return undefined;
  return { role, name };
}

export function parseOperatorUri(uri: string): { role: OperatorRole; name: string } | undefined {
  return uri.startsWith(OPERATOR_URI_PREFIX) ? parseRoleName(uri.slice(OPERATOR_URI_PREFIX.length)) : undefined;
}

export function parseOperatorCommonName(cn: string): { role: OperatorRole; name: string } | undefined {
  return cn.startsWith(OPERATOR_CN_PREFIX) ? parseRoleName(cn.slice(OPERATOR_CN_PREFIX.length)) : undefined;
}

/**
 * The operator a certificate names: CN and exactly one operator SAN URI that agree, and no device or service URI
 * beside it (one certificate, one kind of identity). Undefined otherwise.
 */
export function operatorFromNames(cn: string, uris: readonly string[]): { role: OperatorRole; name: string; id: string } | undefined {
  const fromCn = parseOperatorCommonName(cn);
  if (!fromCn) return undefined;
  const wott = uris.filter((u) => u.startsWith('urn:wott:'));
  if (wott.length !== 1) return undefined;
  const fromUri = parseOperatorUri(wott[0]!);
  if (!fromUri || fromUri.role !== fromCn.role || fromUri.name !== fromCn.name) return undefined;
  return { ...fromCn, id: cn };
}
