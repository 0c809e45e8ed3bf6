/** The broker's TrustSource answered from the FleetView (the view belongs to whoever opened it; closing this leaves it open). */
import type { TrustSource } from '../broker/index.js';
import type { FleetView } from './view.js';

export function fleetTrustSource(view: FleetView): TrustSource {
  const stops: Array<() => void> = [];
  return {
    deviceState: (id) => view.deviceState(id),
    get stateVersion() {
      return view.stateVersion;
    },
    isRevoked: (serial) => view.isRevoked(serial),
    isSuperseded: (serial) => view.isSuperseded(serial),
    onChange: (listener) => {
      stops.push(
        view.onChange((change) => {
          // Sessions are re-checked on any state change, revocation or supersession; tag or certificate-fact updates do not matter to the broker.
          if (change.devices.length || change.revoked.length || change.superseded.length) listener(change.devices);
        }),
      );
    },
    close: () => stops.splice(0).forEach((stop) => stop()),
  };
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
