/** The broker's TrustSource answered from the FleetView (the view belongs to whoever opened it; closing this leaves it open). */
import type { TrustSource } from '../broker/index.js';
import type { FleetView } from './view.js';

export function fleetTrustSource(view: FleetView): TrustSource {
  return new FleetTrustSource(view);
}

/**
 * A class, not an object literal with a getter (a dictionary-mode object, whose property reads are lookups): the broker
 * reads stateVersion on every delivery and deviceState on every publish.
 */
class FleetTrustSource implements TrustSource {
  private readonly stops: Array<() => void> = [];

  constructor(private readonly view: FleetView) {}

  deviceState(id: string) {
    return this.view.deviceState(id);
  }

  get stateVersion() {
    return this.view.stateVersion;
  }

  isRevoked(serial: string) {
    return this.view.isRevoked(serial);
  }

  isSuperseded(serial: string) {
    return this.view.isSuperseded(serial);
  }

  onChange(listener: (devices: string[], serials?: string[]) => void) {
    this.stops.push(
      this.view.onChange((change) => {
        // Sessions are re-checked on any state change, revocation or supersession; tag or certificate-fact updates do not matter to the broker.
        if (change.devices.length || change.revoked.length || change.superseded.length) listener(change.devices, [...change.revoked.map((r) => r.serial), ...change.superseded]);
      }),
    );
  }

  close() {
    this.stops.splice(0).forEach((stop) => stop());
  }
}

/** Scoring's view of what the CA knows about a device (facts the device cannot fake). */
export function fleetCaFacts(view: FleetView) {
  return {
    facts(device: string) {
      const d = view.device(device);
      if (!d) return undefined;
      return {
        state: d.state,
        tpm: d.tpm,
        ...(d.certificate ? { certificate: { notBefore: d.certificate.notBefore, notAfter: d.certificate.notAfter } } : {}),
      };
    },
    /** Devices whose state or CA facts changed: scoring scores them again at once. */
    onChange(listener: (devices: string[]) => void): () => void {
      return view.onChange((change) => {
        const devices = [...new Set([...change.devices, ...change.updated])];
        if (devices.length) listener(devices);
      });
    },
  };
}
