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

import type { SNOOZE_DURATIONS as P_SNOOZE, VULN_SEVERITIES as P_SEVERITIES } from '../../protocol/fleet-api.js';
import type { TRUST_EVENTS as P_TRUST_EVENTS, TRUST_PATHS as P_TRUST_PATHS } from '../../protocol/trust-api.js';

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'] as const;
same<Same<(typeof SEVERITIES)[number], (typeof P_SEVERITIES)[number]>>(true);
export type Severity = (typeof SEVERITIES)[number];

export const SNOOZES = ['24h', '7d'] as const;
same<Same<(typeof SNOOZES)[number], (typeof P_SNOOZE)[number]>>(true);

export const TRUST_EVENT_NAMES = ['ready', 'score', 'device', 'revoked', 'reset'] as const;
same<Same<(typeof TRUST_EVENT_NAMES)[number], (typeof P_TRUST_EVENTS)[number]>>(true);

/** The trust stream (Server-Sent Events), under /api/v1. */
export const TRUST_STREAM = '/trust/stream' as const;
same<Same<typeof TRUST_STREAM, (typeof P_TRUST_PATHS)['stream']>>(true);

import type { BULK_ACTIONS as P_BULK_ACTIONS, BULK_MAX_DEVICES as P_BULK_MAX, FLEET_EVENTS_PATHS as P_EVENTS_PATHS, FLEET_EVENT_TYPES as P_EVENT_TYPES, FLEET_STREAM_EVENTS as P_STREAM_EVENTS } from '../../protocol/fleet-events.js';

export const BULK_ACTIONS = ['quarantine', 'release', 'tag', 'untag'] as const;
same<Same<(typeof BULK_ACTIONS)[number], (typeof P_BULK_ACTIONS)[number]>>(true);
export type BulkAction = (typeof BULK_ACTIONS)[number];
/** Ids per bulk request: a larger selection goes in several requests. */
export const BULK_MAX = 500 as const;
same<Same<typeof BULK_MAX, typeof P_BULK_MAX>>(true);

export const FLEET_EVENT_TYPES = ['enrolled', 'renewed', 'claimed', 'quarantined', 'released', 'revoked', 'score_drop', 'auth_failure', 'lateral_movement', 'audit_finding'] as const;
same<Same<(typeof FLEET_EVENT_TYPES)[number], (typeof P_EVENT_TYPES)[number]>>(true);
export const FLEET_STREAM_EVENTS = ['ready', 'fleet', 'reset'] as const;
same<Same<(typeof FLEET_STREAM_EVENTS)[number], (typeof P_STREAM_EVENTS)[number]>>(true);
export const EVENTS_STREAM = '/events/stream' as const;
same<Same<typeof EVENTS_STREAM, (typeof P_EVENTS_PATHS)['stream']>>(true);
