/**
 * Live updates: one EventSource on GET /api/v1/trust/stream (same origin: the browser sends the session cookie; the
 * route admits every operator role). Pages subscribe with useLive(); the connection opens with the first subscriber,
 * closes with the last, and EventSource reconnects by itself (resuming with Last-Event-ID).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { TrustDeviceEvent, TrustRevokedEvent, TrustScoreEvent } from '../../protocol/trust-api.js';
import { TRUST_EVENT_NAMES, TRUST_STREAM } from './contract.js';

export type LiveEvent =
  | { type: 'score'; data: TrustScoreEvent; at: number }
  | { type: 'device'; data: TrustDeviceEvent; at: number }
  | { type: 'revoked'; data: TrustRevokedEvent; at: number }
  | { type: 'ready'; data: { position: number; resumed: boolean }; at: number }
  | { type: 'reset'; data: { reason: string }; at: number };

type Listener = (event: LiveEvent) => void;
const listeners = new Set<Listener>();
const statusListeners = new Set<(open: boolean) => void>();
let source: EventSource | undefined;
let open = false;

function setOpen(value: boolean) {
  open = value;
  for (const l of statusListeners) l(value);
}

function start() {
  if (source || typeof EventSource === 'undefined') return;
  source = new EventSource(`/api/v1${TRUST_STREAM}`, { withCredentials: true });
  source.onopen = () => setOpen(true);
  source.onerror = () => setOpen(false);
  for (const name of TRUST_EVENT_NAMES) {
    source.addEventListener(name, (e) => {
      let data: unknown;
      try {
        data = JSON.parse((e as MessageEvent<string>).data);
      } catch {
        return;
      }
      const event = { type: name, data, at: Date.now() } as LiveEvent;
      for (const l of listeners) l(event);
    });
  }
}

function stop() {
  source?.close();
  source = undefined;
  setOpen(false);
}

/** Calls `listener` (the latest one given) for every stream event while the component is mounted; returns whether the stream is open. */
export function useLive(listener: Listener): boolean {
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
}

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

