/** Who may hold a credential: pure rules, no I/O. */
import type { DeviceState } from '../protocol/index.js';

export interface CredentialTerms {
  tags: string[];
  minScore: number;
  expiresAt: string | null;
}

export interface DeviceStanding {
  state: DeviceState;
  tags: string[];
  /** The effective score (policy/effective-score.ts): state ceilings already applied. */
  score: number;
}

/**
 * A device is entitled when it is active, holds every one of the credential's tags (a credential has at least one,
 * so "no tags" never means "everyone"), its effective score reaches the minimum, and the version has not expired.
 * Returns why not, or undefined when entitled.
 */
export function whyNotEntitled(terms: CredentialTerms, device: DeviceStanding | undefined, now: number): string | undefined {
  if (!device) return 'not in the inventory';
  if (device.state !== 'active') return `device is ${device.state}`;
  if (terms.tags.length === 0) return 'the credential has no tags';
  const missing = terms.tags.find((t) => !device.tags.includes(t));
  if (missing !== undefined) return `lacks tag ${missing}`;
  if (!(device.score >= terms.minScore)) return `score ${device.score} below ${terms.minScore}`;
  if (terms.expiresAt !== null && Date.parse(terms.expiresAt) <= now) return 'the credential expired';
  return undefined;
}

export function isEntitled(terms: CredentialTerms, device: DeviceStanding | undefined, now: number): boolean {
  return whyNotEntitled(terms, device, now) === undefined;
}
