/**
 * What the broker needs to know from the CA, kept in memory so that no decision ever waits on I/O: each device's
 * lifecycle state and which certificates are revoked or superseded. A wott gateway answers it from its FleetView
 * (fleet/); Aedes users without a wott CA use staticTrustSource.
 */
import type { DeviceState } from '../protocol/index.js';

export interface TrustSource {
  /** undefined: the device is not known to the CA (treated as active by the broker). */
  deviceState(id: string): DeviceState | undefined;
  /**
   * Moves whenever an answer of deviceState() changes, at the moment it changes: the broker caches per connection
   * what a device's state allows and re-reads the state when this moves. A source without it must call the
   * onChange listeners synchronously with each state change.
   */
  readonly stateVersion?: number;
  isRevoked(serial: string): boolean;
  /** A certificate replaced by a newer one (renewed, or the device enrolled again): it no longer connects. */
  isSuperseded(serial: string): boolean;
  /**
   * Called after the source has changed (a revocation, a quarantine, a claim ...), with the devices whose state
   * changed and, when the source knows them, the certificates revoked or superseded: then the broker re-checks only
   * the sessions of those devices and certificates. Without `serials` it re-checks every session.
   */
  onChange(listener: (devices: string[], serials?: string[]) => void): void;
  close(): void;
}

/** For Aedes users without a wott CA inventory: every device active, nothing revoked. */
export function staticTrustSource(states: Record<string, DeviceState> = {}, revoked: string[] = [], superseded: string[] = []): TrustSource {
  const set = new Set(revoked);
  const replaced = new Set(superseded);
  // A Map, not the record: a miss on a plain object walks its prototype chain, on every delivery.
  const byId = new Map(Object.entries(states));
  return { deviceState: (id) => byId.get(id), isRevoked: (s) => set.has(s), isSuperseded: (s) => replaced.has(s), onChange: () => {}, close: () => {} };
}
