/** Device identity rules shared by the CA, the broker and the agent. */

export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const DEVICE_URI_PREFIX = 'urn:wott:device:';

export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && DEVICE_ID_PATTERN.test(value);
}

export class InvalidDeviceIdError extends Error {
  constructor(value: unknown) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
    super(`invalid device id ${shown}: expected 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit`);
    this.name = 'InvalidDeviceIdError';
  }
}

export function assertDeviceId(value: unknown): string {
  if (!isDeviceId(value)) throw new InvalidDeviceIdError(value);
  return value;
}

/** SAN URI carried by every device certificate. */
export function deviceUri(id: string): string {
  return DEVICE_URI_PREFIX + assertDeviceId(id);
}

/** The device id named by a SAN URI, or undefined when the URI is not a valid device URI. */
export function parseDeviceUri(uri: string): string | undefined {
  if (!uri.startsWith(DEVICE_URI_PREFIX)) return undefined;
  const id = uri.slice(DEVICE_URI_PREFIX.length);
  return isDeviceId(id) ? id : undefined;
}
