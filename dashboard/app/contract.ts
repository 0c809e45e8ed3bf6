/**
 * Lists the page needs from protocol/ as values. protocol/'s own constants sit beside its zod schemas, and importing
 * them would bundle zod into the page; so they are repeated here as types checked against protocol/'s (tsc fails
 * when protocol/ gains or loses a member: `npm run build` type-checks this folder).
 */
import type { API_REVOCATION_REASONS, DEVICE_SORT_KEYS, DeviceSummary } from '../../protocol/api.js';

type DeviceState = DeviceSummary['state'];

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same = <T extends true>(_: T) => undefined;

export const STATES = ['unclaimed', 'active', 'quarantined', 'revoked'] as const;
same<Same<(typeof STATES)[number], DeviceState>>(true);

export const SORT_KEYS = ['id', 'state', 'createdAt', 'updatedAt', 'certificateExpiry', 'score', 'lastReport'] as const;
same<Same<(typeof SORT_KEYS)[number], (typeof DEVICE_SORT_KEYS)[number]>>(true);
export type SortKey = (typeof SORT_KEYS)[number];

export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn'] as const;
same<Same<(typeof REVOCATION_REASONS)[number], (typeof API_REVOCATION_REASONS)[number]>>(true);
