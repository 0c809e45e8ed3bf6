/**
 * Live updates over Server-Sent Events, same origin (the browser sends the session cookie):
 *  - GET /api/v1/trust/stream: scores, device states, revocations (every operator role); useLive();
 *  - GET /api/v1/events/stream: fleet events for people (enrollments, quarantines, score drops, auth failures…);
 *    useFleetEvents(), opened with a small backlog so a page that opens shows what just happened.
 * Each connection opens with its first subscriber and closes with its last; EventSource reconnects by itself
 * (resuming with Last-Event-ID).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { FleetEvent } from '../../protocol/fleet-events.js';
import type { TrustDeviceEvent, TrustRevokedEvent, TrustScoreEvent } from '../../protocol/trust-api.js';
import { EVENTS_STREAM, FLEET_STREAM_EVENTS, TRUST_EVENT_NAMES, TRUST_STREAM } from './contract.js';

export type LiveEvent =
  | { type: 'score'; data: TrustScoreEvent; at: number }
  | { type: 'device'; data: TrustDeviceEvent; at: number }
  | { type: 'revoked'; data: TrustRevokedEvent; at: number }
  | { type: 'ready'; data: { position: number; resumed: boolean }; at: number }
  | { type: 'reset'; data: { reason: string }; at: number };

export type FleetStreamEvent =
  | { type: 'fleet'; data: FleetEvent }
  | { type: 'ready'; data: { seq: number; resumed: boolean } }
  | { type: 'reset'; data: { reason: string } };

/** One shared EventSource and its subscribers. */
function sharedStream<E>(url: string, names: readonly string[]) {
  type Listener = (event: E) => void;
  const listeners = new Set<Listener>();
  const statusListeners = new Set<(open: boolean) => void>();
  let source: EventSource | undefined;
  let open = false;
  const setOpen = (value: boolean) => {
    open = value;
    for (const l of statusListeners) l(value);
  };
  const start = () => {
    if (source || typeof EventSource === 'undefined') return;
    source = new EventSource(url, { withCredentials: true });
    source.onopen = () => setOpen(true);
    source.onerror = () => setOpen(false);
    for (const name of names) {
      source.addEventListener(name, (e) => {
        let data: unknown;
        try {
          data = JSON.parse((e as MessageEvent<string>).data);
        } catch {
          return;
        }
        const event = { type: name, data, at: Date.now() } as E;
        for (const l of listeners) l(event);
      });
    }
  };
  const stop = () => {
    source?.close();
    source = undefined;
    setOpen(false);
  };
  /** Calls `listener` (the latest one given) for every event while the component is mounted; returns whether the stream is open. */
  return function use(listener: Listener): boolean {
    const ref = useRef(listener);
    ref.current = listener;
    const [isOpen, setIsOpen] = useState(open);
    useEffect(() => {
      const l: Listener = (e) => ref.current(e);
      listeners.add(l);
      statusListeners.add(setIsOpen);
      start();
      setIsOpen(open);
      return () => {
        listeners.delete(l);
        statusListeners.delete(setIsOpen);
        if (listeners.size === 0) stop();
      };
    }, []);
    return isOpen;
  };
}

/** Fleet events an opening page is sent first. */
export const FEED_BACKLOG = 20;

export const useLive = sharedStream<LiveEvent>(`/api/v1${TRUST_STREAM}`, TRUST_EVENT_NAMES);
export const useFleetEvents = sharedStream<FleetStreamEvent>(`/api/v1${EVENTS_STREAM}?backlog=${FEED_BACKLOG}`, FLEET_STREAM_EVENTS);

/** Calls `fn` at most once per `ms` after a burst of calls (reloads after live events). */
export function useDebounced(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return () => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      ref.current();
    }, ms);
  };
}
