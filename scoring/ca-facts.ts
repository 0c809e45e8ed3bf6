/**
 * What the CA knows about a device (state, TPM-held key, current certificate): facts the device can not fake, so
 * they override its own telemetry. The gateway and `wott scoring` answer it from the FleetView; scoring running
 * where there is no CA inventory has none.
 */
import type { CaFacts } from './factors.js';

export interface CaFactsSource {
  facts(device: string): CaFacts | undefined;
  /** Devices whose facts changed (a quarantine, release, claim, revocation, renewal): scored again at once. */
  onChange?(listener: (devices: string[]) => void): () => void;
}
