/**
 * The one table of the dashboard: every page's rows go through it, so headers, sort buttons (aria-sort), row
 * headers, selection checkboxes and the scrolling wrapper look and behave the same everywhere.
 *
 * Long tables render only the rows near the viewport (plus an overscan), with spacer rows standing in for the
 * others: the document stays small and a re-sort after a live event touches a few dozen rows, not hundreds. The
 * row height is measured from a rendered row, and virtual rows do not wrap (`tr.v` in the stylesheet), so every row
 * has that height. Written here rather than taken from a library: the ones for Preact/React bring their own
 * markup (divs, not a <table> with its semantics) or several KB for what is forty lines.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

export interface Column<T> {
  key: string;
  label: ComponentChildren;
  /** The header is for screen readers only (a column of buttons). */
  hiddenLabel?: boolean;
  /** The cell is the row's header (<th scope="row">): the device id, the CVE. */
  rowHeader?: boolean;
  /** Class on the header and on every cell of the column (col-score…): tests and the stylesheet find cells by it. */
  class?: string;
  title?: (row: T) => string | undefined;
  /** A class that depends on the row (a negative contribution in red). */
  cellClass?: (row: T) => string | undefined;
  /** The column's header is a sort button (the table's `sort` says which column is sorted, and how). */
  sortable?: boolean;
  cell: (row: T) => ComponentChildren;
}

export interface Selection {
  selected: ReadonlySet<string>;
  toggle(key: string, on: boolean): void;
  /** The header checkbox: every row of the table on or off. */
  toggleAll(keys: string[], on: boolean): void;
  /** Accessible name of a row's checkbox ("Select dev-1"). */
  label(key: string): string;
}

export interface TableProps<T> {
  columns: Array<Column<T>>;
  rows: readonly T[];
  rowKey: (row: T) => string;
  class?: string;
  caption?: string;
  /** Extra attributes of a row (data-device, id). */
  rowAttrs?: (row: T) => Record<string, string | undefined>;
  sort?: { key: string; order: 'asc' | 'desc'; onSort(key: string): void };
  busy?: boolean;
  describedBy?: string;
  selection?: Selection;
  /** Render only the rows in view once there are more than this many (default: never). */
  virtualAbove?: number;
}

const OVERSCAN = 20;

const cls = <T,>(c: Column<T>, row: T) => [c.class, c.cellClass?.(row)].filter(Boolean).join(' ') || undefined;

/** The rows of `total` that are near the viewport, given where the table's body is on the page. */
function useWindow(body: { current: HTMLTableSectionElement | null }, total: number, enabled: boolean): { from: number; to: number; rowHeight: number } {
  const [range, setRange] = useState({ from: 0, to: Math.min(total, 60), rowHeight: 0 });
  const height = useRef(0);
  useLayoutEffect(() => {
    if (!enabled) return;
    let frame = 0;
    const measure = () => {
      frame = 0;
      const el = body.current;
      if (!el) return;
      const row = el.querySelector<HTMLTableRowElement>('tr.v');
      if (row && row.offsetHeight > 0) height.current = row.offsetHeight;
      const h = height.current || 36;
      const top = el.getBoundingClientRect().top;
      const first = Math.max(0, Math.floor(-top / h) - OVERSCAN);
      const last = Math.min(total, Math.ceil((window.innerHeight - top) / h) + OVERSCAN);
      setRange((r) => (r.from === first && r.to === Math.max(first, last) && r.rowHeight === h ? r : { from: first, to: Math.max(first, last), rowHeight: h }));
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(measure);
    };
    measure();
    window.addEventListener('scroll', schedule, { passive: true });
    window.addEventListener('resize', schedule, { passive: true });
    return () => {
      cancelAnimationFrame(frame);
      window.removeEventListener('scroll', schedule);
      window.removeEventListener('resize', schedule);
    };
  }, [enabled, total]);
  return enabled ? range : { from: 0, to: total, rowHeight: 0 };
}

function HeaderCheckbox({ keys, selection }: { keys: string[]; selection: Selection }) {
  const ref = useRef<HTMLInputElement>(null);
  const on = keys.filter((k) => selection.selected.has(k)).length;
  const all = keys.length > 0 && on === keys.length;
  useEffect(() => {
    if (ref.current) ref.current.indeterminate = on > 0 && !all;
  }, [on, all]);
  return <input ref={ref} type="checkbox" aria-label="Select every row of this table" checked={all} disabled={keys.length === 0} onChange={(e) => selection.toggleAll(keys, e.currentTarget.checked)} />;
}

export function Table<T>(props: TableProps<T>) {
  const { columns, rows, rowKey, sort, selection } = props;
  const body = useRef<HTMLTableSectionElement>(null);
  const virtual = props.virtualAbove !== undefined && rows.length > props.virtualAbove;
  const { from, to, rowHeight } = useWindow(body, rows.length, virtual);
  const span = columns.length + (selection ? 1 : 0);
  const shown = virtual ? rows.slice(from, to) : rows;
  const spacer = (n: number, key: string) => (n > 0 ? <tr key={key} class="spacer" aria-hidden="true" style={{ height: `${n * rowHeight}px` }}><td colSpan={span} /></tr> : null);
  const header = (c: Column<T>) => {
    const label = c.hiddenLabel ? <span class="visually-hidden">{c.label}</span> : c.label;
    if (!c.sortable || !sort) {
      return (
        <th key={c.key} scope="col" class={c.class}>
          {label}
        </th>
      );
    }
    const sorted = sort.key === c.key;
    return (
      <th key={c.key} scope="col" class={c.class} aria-sort={sorted ? (sort.order === 'asc' ? 'ascending' : 'descending') : 'none'}>
        <button type="button" class="sort" onClick={() => sort.onSort(c.key)}>
          {label}
          <span aria-hidden="true">{sorted ? (sort.order === 'asc' ? ' ▲' : ' ▼') : ''}</span>
        </button>
      </th>
    );
  };
  const row = (r: T, i: number) => {
    const key = rowKey(r);
    const attrs = props.rowAttrs?.(r) ?? {};
    return (
      <tr key={key} {...attrs} aria-rowindex={virtual ? from + i + 2 : undefined} class={[virtual ? 'v' : '', selection?.selected.has(key) ? 'selected' : ''].join(' ').trim() || undefined}>
        {selection ? (
          <td class="col-select">
            <input type="checkbox" aria-label={selection.label(key)} checked={selection.selected.has(key)} onChange={(e) => selection.toggle(key, e.currentTarget.checked)} />
          </td>
        ) : null}
        {columns.map((c) =>
          c.rowHeader ? (
            <th key={c.key} scope="row" class={cls(c, r)} title={c.title?.(r)}>
              {c.cell(r)}
            </th>
          ) : (
            <td key={c.key} class={cls(c, r)} title={c.title?.(r)} data-label={typeof c.label === 'string' && !c.hiddenLabel ? c.label : undefined}>
              {c.cell(r)}
            </td>
          ),
        )}
      </tr>
    );
  };
  return (
    <div class="table-wrap">
      <table class={props.class} aria-busy={props.busy === undefined ? undefined : props.busy ? 'true' : 'false'} aria-describedby={props.describedBy} aria-rowcount={virtual ? rows.length + 1 : undefined}>
        {props.caption ? <caption class="visually-hidden">{props.caption}</caption> : null}
        <thead>
          <tr>
            {selection ? (
              <th scope="col" class="col-select">
                <HeaderCheckbox keys={rows.map(rowKey)} selection={selection} />
              </th>
            ) : null}
            {columns.map(header)}
          </tr>
        </thead>
        <tbody ref={body}>
          {virtual ? spacer(from, 'before') : null}
          {shown.map(row)}
          {virtual ? spacer(rows.length - to, 'after') : null}
        </tbody>
      </table>
    </div>
  );
}
