/** Small shared pieces: sections, state badges, times, loading/error states, the confirmation dialog. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Whoami } from '../../protocol/api.js';
import { ApiError } from './api.js';

export type Role = Whoami['role'];
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2, service: -1 };
/** Whether `role` may do what `least` may (the API decides anyway; the page only hides what it would refuse). */
export const can = (role: Role, least: 'viewer' | 'operator' | 'admin') => RANK[role] >= RANK[least];

/** One part of a page, fed by one API route (named, so a reader knows where the data comes from). */
export function Section(props: { title: string; source: string; children: ComponentChildren; id?: string }) {
  const id = props.id ?? `s-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class="card" aria-labelledby={id}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
      <p class="source">
        from <code>{props.source}</code>
      </p>
    </section>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

const RTF = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
export function relative(iso: string, now = Date.now()): string {
  const diff = (Date.parse(iso) - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 60) return RTF.format(Math.round(diff), 'second');
  if (abs < 3600) return RTF.format(Math.round(diff / 60), 'minute');
  if (abs < 172800) return RTF.format(Math.round(diff / 3600), 'hour');
  return RTF.format(Math.round(diff / 86400), 'day');
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  return (
    <time dateTime={iso} title={iso}>
      {new Date(iso).toLocaleString()} <span class="muted">({relative(iso)})</span>
    </time>
  );
}

export function Expiry({ iso }: { iso: string | null }) {
  if (!iso) return <span class="muted">none</span>;
  const left = Date.parse(iso) - Date.now();
  const cls = left <= 0 ? 'expired' : left < 48 * 3600_000 ? 'soon' : '';
  return (
    <time dateTime={iso} title={iso} class={cls}>
      {relative(iso)}
      {left <= 0 ? ' (expired)' : left < 48 * 3600_000 ? ' (within 48 h)' : ''}
    </time>
  );
}

export function Failure({ error }: { error: unknown }) {
  const message = error instanceof ApiError ? `${error.status}: ${error.message}` : String((error as Error)?.message ?? error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

export type Load<T> = { data?: T; error?: unknown; loading: boolean; reload: () => void };

/** Loads `fetcher` whenever `key` changes; a failure is kept to show, not thrown. */
export function useLoad<T>(fetcher: () => Promise<T>, key: string): Load<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fetcher().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}

/**
 * A modal confirmation (the native <dialog>: focus moves in, Escape cancels, the page behind is inert). `message`
 * names what is about to happen and to which device.
 */
export function Confirm(props: { open: boolean; title: string; message: ComponentChildren; confirmLabel: string; danger?: boolean; onConfirm: () => void; onCancel: () => void; children?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onCancel={(e) => (e.preventDefault(), props.onCancel())}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        <p>{props.message}</p>
        {props.children}
        <div class="buttons">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? 'danger' : 'primary'}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** A read-only block of text with a Copy button (the Clipboard API: https pages only, which ours are). */
export function CopyBlock({ label, text }: { label: string; text: string }) {
  const [copied, setCopied] = useState(false);
  const id = `copy-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <div class="copy">
      <div class="copy-head">
        <h3 id={id}>{label}</h3>
        <button
          type="button"
          aria-describedby={id}
          onClick={() =>
            void navigator.clipboard?.writeText(text).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <pre aria-labelledby={id} tabIndex={0}>
        {text}
      </pre>
    </div>
  );
}

/** The document title names the page (screen readers announce it; tabs and history show it). */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · wott`;
  }, [title]);
}

/** The distinct score thresholds of the policy rules in use (GET /policies), lowest first. */
export function thresholdsOf(policies: { items: Array<{ publish: number | null; subscribe: number | null }> } | undefined): number[] {
  if (!policies) return [];
  const all = policies.items.flatMap((p) => [p.publish, p.subscribe]).filter((n): n is number => n !== null && n > 0);
  return [...new Set(all)].sort((a, b) => a - b);
}

/** A score, coloured by the thresholds in use: below the lowest (bad), below some (warn), meets every one (ok). The colour always comes with words for screen readers and a title. */
export function Score({ score, thresholds }: { score: number; thresholds: number[] }) {
  const below = thresholds.filter((t) => score < t).length;
  const cls = thresholds.length === 0 ? 'ok' : below === thresholds.length ? 'bad' : below > 0 ? 'warn' : 'ok';
  const words = thresholds.length === 0 ? '' : below === 0 ? 'meets every threshold' : `below ${below} of ${thresholds.length} thresholds`;
  return (
    <span class={`score score-${cls}`} title={words || undefined}>
      {score.toFixed(2)}
      {words ? <span class="visually-hidden"> ({words})</span> : null}
    </span>
  );
}

/** Vulnerability counts by severity as small badges (only the non-zero ones). */
export function VulnCounts({ counts }: { counts: Record<string, number> }) {
  const parts = Object.entries(counts).filter(([, n]) => n > 0);
  if (parts.length === 0) return <span class="muted">none</span>;
  return (
    <span class="vulns">
      {parts.map(([sev, n]) => (
        <span key={sev} class={`badge sev-${sev}`}>
          {n} {sev}
        </span>
      ))}
    </span>
  );
}
