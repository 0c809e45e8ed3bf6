/**
 * Devices: the API's device list, one page at a time (the API sorts, filters and pages by cursor, so the page stays
 * light with any number of devices). Filters, sort and page live in the URL: they survive a reload, can be shared,
 * and the back button walks back through them.
 *
 * Live: scores and states from the trust stream replace what the page loaded (gathered and applied at most every
 * 250 ms, however many events come), the rows re-sort when the page is sorted by score or state, and a device that
 * joins or leaves the fleet reloads the page in place (selection and scroll stay). Operators select devices
 * (checkboxes, or every device the filters match) and quarantine, release, tag or untag them through
 * POST /devices/actions, in requests of at most BULK_MAX ids; each device's result is shown.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { DeviceListItem, DevicePage, Whoami } from '../../../protocol/api.js';
import type { BulkActionResult, BulkResultItem } from '../../../protocol/fleet-events.js';
import type { PolicyList } from '../../../protocol/fleet-api.js';
import { call, qs } from '../api.js';
import { BULK_MAX, SORT_KEYS, STATES, type BulkAction, type SortKey } from '../contract.js';
import { useDebounced, useLive } from '../live.js';
import { Table, type Column } from '../table.js';
import { can, Confirm, Expiry, Failure, relative, Score, StateBadge, thresholdsOf, useLoad, useTitle, VulnCounts } from '../ui.js';

const PAGE_SIZES = [50, 100, 250, 500];
/** Devices "select every device the filters match" gathers at most (then the list says so). */
const SELECT_MAX = 10_000;
/** Rows rendered at once before the table renders only those in view. */
const VIRTUAL_ABOVE = 120;
const STATE_ORDER: Record<string, number> = Object.fromEntries(STATES.map((s, i) => [s, i]));
type Row = DeviceListItem;
const bound = (v: string | undefined) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) && Number(v) >= 0 && Number(v) <= 1 ? v : undefined);

function compareBy(key: SortKey, order: 'asc' | 'desc') {
  const sign = order === 'asc' ? 1 : -1;
  const value = (d: Row): string | number => (key === 'score' ? d.score : key === 'lastReport' ? (d.lastReport ? Date.parse(d.lastReport) : -1) : key === 'certificateExpiry' ? (d.certificateExpiry ?? '') : d[key]);
  return (a: Row, b: Row) => {
    const x = value(a);
    const y = value(b);
    return (x < y ? -sign : x > y ? sign : 0) || (a.id < b.id ? -sign : a.id > b.id ? sign : 0);
  };
}

function columns(thresholds: number[]): Array<Column<Row>> {
  return [
    { key: 'id', label: 'Device', rowHeader: true, sortable: true, class: 'col-id', cell: (d) => <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a> },
    { key: 'score', label: 'Score', sortable: true, class: 'col-score', title: (d) => (d.worstFactor ? `costs most: ${d.worstFactor.reason}` : undefined), cell: (d) => <Score score={d.score} thresholds={thresholds} /> },
    { key: 'state', label: 'State', sortable: true, class: 'col-state', cell: (d) => <StateBadge state={d.state} /> },
    {
      key: 'tags',
      label: 'Tags',
      class: 'col-tags',
      cell: (d) =>
        d.tags.map((t) => (
          <a key={t} class="tag" href={`/devices${qs({ tag: t })}`}>
            {t}
          </a>
        )),
    },
    {
      key: 'connected',
      label: 'Connected',
      class: 'col-connected',
      cell: (d) =>
        d.connected ? (
          <span title={`since ${d.connected.since}${d.connected.remoteAddress ? ` from ${d.connected.remoteAddress}` : ''}`}>yes{d.connected.sessions > 1 ? ` (${d.connected.sessions})` : ''}</span>
        ) : (
          <span class="muted">no</span>
        ),
    },
    {
      key: 'lastReport',
      label: 'Last report',
      sortable: true,
      class: 'col-lastReport',
      cell: (d) =>
        d.lastReport ? (
          <time dateTime={d.lastReport} title={d.lastReport}>
            {relative(d.lastReport)}
          </time>
        ) : (
          <span class="muted">never</span>
        ),
    },
    { key: 'certificateExpiry', label: 'Certificate expires', sortable: true, class: 'col-certificateExpiry', cell: (d) => <Expiry iso={d.certificateExpiry} /> },
    { key: 'vulnerabilities', label: 'Vulnerabilities', class: 'col-vulnerabilities', cell: (d) => <VulnCounts counts={d.vulnerabilities} /> },
    {
      key: 'updatedAt',
      label: 'Updated',
      sortable: true,
      class: 'col-updatedAt',
      cell: (d) => (
        <time dateTime={d.updatedAt} title={d.updatedAt}>
          {relative(d.updatedAt)}
        </time>
      ),
    },
  ];
}

const VERB: Record<BulkAction, [string, string]> = {
  quarantine: ['Quarantine', 'quarantined'],
  release: ['Release', 'released'],
  tag: ['Add tag', 'tagged'],
  untag: ['Remove tag', 'untagged'],
};

type Outcome = { action: BulkAction; tag?: string; succeeded: number; failures: Array<Extract<BulkResultItem, { ok: false }>>; error?: string };

/** The selection bar: what is selected, the actions, the confirmation naming the devices, each device's result. */
function BulkBar(props: { selected: ReadonlySet<string>; onPage: number; clear: () => void; selectAll: () => void; gathering: string | undefined; done: () => void }) {
  const { selected } = props;
  const [pending, setPending] = useState<{ action: BulkAction; tag?: string }>();
  const [tag, setTag] = useState('');
  const [running, setRunning] = useState<string>();
  const [outcome, setOutcome] = useState<Outcome>();
  const ids = [...selected];
  const n = ids.length;
  const tagOk = /^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,62}$/.test(tag);
  const run = async (action: BulkAction, tagName?: string) => {
    setPending(undefined);
    const result: Outcome = { action, ...(tagName ? { tag: tagName } : {}), succeeded: 0, failures: [] };
    try {
      for (let i = 0; i < ids.length; i += BULK_MAX) {
        setRunning(`${VERB[action][0]}: ${Math.min(i + BULK_MAX, n)} of ${n}…`);
        const chunk = ids.slice(i, i + BULK_MAX);
        const r = await call<BulkActionResult>('POST', '/devices/actions', { ids: chunk, action, ...(tagName ? { tags: [tagName] } : {}) });
        result.succeeded += r.succeeded;
        for (const item of r.results) if (!item.ok) result.failures.push(item);
      }
    } catch (error) {
      result.error = (error as Error).message;
    }
    setRunning(undefined);
    setOutcome(result);
    props.done();
  };
  const names = ids.slice(0, 5).join(', ') + (n > 5 ? ` and ${n - 5} more` : '');
  return (
    <section class="bulk" aria-label="Selected devices">
      <p class="bulk-count" role="status">
        <strong>{n}</strong> device{n === 1 ? '' : 's'} selected{n > props.onPage ? ` (${n - props.onPage} not on this page)` : ''}.{' '}
        {props.gathering ? <span>{props.gathering}</span> : null}
      </p>
      <div class="buttons">
        <button type="button" onClick={props.selectAll} disabled={!!props.gathering}>
          Select every device the filters match
        </button>
        <button type="button" onClick={props.clear} disabled={n === 0}>
          Clear selection
        </button>
        <button type="button" class="danger" disabled={n === 0 || !!running} onClick={() => setPending({ action: 'quarantine' })}>
          Quarantine
        </button>
        <button type="button" disabled={n === 0 || !!running} onClick={() => setPending({ action: 'release' })}>
          Release
        </button>
        <label class="inline">
          Tag
          <input name="bulk-tag" value={tag} maxLength={63} placeholder="site:berlin" onInput={(e) => setTag(e.currentTarget.value.trim())} />
        </label>
        <button type="button" disabled={n === 0 || !tagOk || !!running} onClick={() => setPending({ action: 'tag', tag })}>
          Add tag
        </button>
        <button type="button" disabled={n === 0 || !tagOk || !!running} onClick={() => setPending({ action: 'untag', tag })}>
          Remove tag
        </button>
      </div>
      {running ? <p role="status">{running}</p> : null}
      {outcome ? (
        <div class={`bulk-result ${outcome.failures.length || outcome.error ? 'error' : 'ok'}`} role="status">
          <p>
            {VERB[outcome.action][0]}
            {outcome.tag ? ` "${outcome.tag}"` : ''}: {outcome.succeeded} device{outcome.succeeded === 1 ? '' : 's'} {VERB[outcome.action][1]}
            {outcome.failures.length ? `, ${outcome.failures.length} refused` : ''}.{outcome.error ? ` Stopped: ${outcome.error}` : ''}
          </p>
          {outcome.failures.length ? (
            <ul class="failures">
              {outcome.failures.slice(0, 50).map((f) => (
                <li key={f.id}>
                  <a href={`/devices/${encodeURIComponent(f.id)}`}>{f.id}</a>: {f.message}
                </li>
              ))}
              {outcome.failures.length > 50 ? <li>and {outcome.failures.length - 50} more</li> : null}
            </ul>
          ) : null}
        </div>
      ) : null}
      <Confirm
        open={pending !== undefined}
        title={pending ? `${VERB[pending.action][0]}${pending.tag ? ` "${pending.tag}" ${pending.action === 'tag' ? 'to' : 'from'}` : ''} ${n} device${n === 1 ? '' : 's'}?` : ''}
        message={
          pending
            ? `${pending.action === 'quarantine' ? 'Their score ceiling becomes 0 in the broker at once: ' : pending.action === 'release' ? 'The quarantine ends for: ' : ''}${names}.`
            : ''
        }
        confirmLabel={pending ? `${VERB[pending.action][0]} ${n}` : ''}
        danger={pending?.action === 'quarantine'}
        onConfirm={() => pending && void run(pending.action, pending.tag)}
        onCancel={() => setPending(undefined)}
      />
    </section>
  );
}

export function DevicesPage({ who }: { who: Whoami }) {
  useTitle('Devices');
  const operator = can(who.role, 'operator');
  const { query, route, path } = useLocation();
  const sort = (SORT_KEYS as readonly string[]).includes(query.sort ?? '') ? (query.sort as SortKey) : 'id';
  const order = query.order === 'desc' ? 'desc' : 'asc';
  const limit = PAGE_SIZES.includes(Number(query.limit)) ? Number(query.limit) : 100;
  const filter = { state: query.state, tag: query.tag, q: query.q, minScore: bound(query.minScore), maxScore: bound(query.maxScore), below: query.below || undefined };
  const params = { ...filter, sort, order, limit, cursor: query.cursor };
  const key = qs(params);
  const page = useLoad(() => call<DevicePage>('GET', `/devices${key}`), key);
  const policies = useLoad(() => call<PolicyList>('GET', '/policies'), 'policies');
  const thresholds = thresholdsOf(policies.data);
  const rules = (policies.data?.items ?? []).flatMap((p) =>
    (['publish', 'subscribe'] as const).filter((a) => p[a] !== null && p[a]! > 0).map((a) => ({ value: `${a}:${p.topic}`, label: `${a} ${p.topic} (≥ ${p[a]})` })),
  );

  // Live: events are gathered in a map and applied at most every 250 ms, so a burst of score changes across a large
  // fleet costs one render, not one per event.
  const [live, setLive] = useState<Record<string, { score?: number; state?: string }>>({});
  const pendingLive = useRef<Record<string, { score?: number; state?: string }>>({});
  const flush = useDebounced(() => {
    const batch = pendingLive.current;
    pendingLive.current = {};
    setLive((m) => {
      const next = { ...m };
      for (const [id, v] of Object.entries(batch)) next[id] = { ...next[id], ...v };
      return next;
    });
  }, 250);
  useEffect(() => {
    pendingLive.current = {};
    setLive({});
  }, [page.data]);
  const reloadSoon = useDebounced(page.reload, 1000);
  const shownIds = useRef(new Set<string>());
  const streaming = useLive((e) => {
    if (e.type === 'reset') return reloadSoon();
    const id = e.type === 'score' || e.type === 'device' ? e.data.device : undefined;
    if (!id) return;
    // A device the page does not show: one that just joined (or left) the fleet may belong here: load the page again.
    if (!shownIds.current.has(id)) {
      if (e.type === 'device' && !query.cursor) reloadSoon();
      return;
    }
    let v: { score: number; state?: string };
    if (e.type === 'score') v = { score: e.data.score, ...(e.data.state ? { state: e.data.state } : {}) };
    else if (e.type === 'device') {
      if (e.data.state === null) return reloadSoon();
      v = { score: e.data.score, state: e.data.state };
    } else return;
    pendingLive.current[id] = { ...pendingLive.current[id], ...v };
    flush();
  });

  const items = page.data?.items ?? [];
  const rows = useMemo(() => {
    const merged = items.map((d) => (live[d.id] ? ({ ...d, ...live[d.id] } as Row) : d));
    // The API sorted by what it knew; live changes re-sort the page by the same key.
    return sort === 'score' || sort === 'state' ? merged.sort(compareBy(sort, order)) : merged;
  }, [items, live, sort, order]);
  shownIds.current = new Set(items.map((d) => d.id));

  // Selection: ids, kept across pages, filters and reloads until cleared.
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [gathering, setGathering] = useState<string>();
  const selection = operator
    ? {
        selected,
        toggle: (id: string, on: boolean) =>
          setSelected((s) => {
            const next = new Set(s);
            if (on) next.add(id);
            else next.delete(id);
            return next;
          }),
        toggleAll: (ids: string[], on: boolean) =>
          setSelected((s) => {
            const next = new Set(s);
            for (const id of ids) on ? next.add(id) : next.delete(id);
            return next;
          }),
        label: (id: string) => `Select ${id}`,
      }
    : undefined;
  const selectAllMatching = async () => {
    const ids = new Set(selected);
    let cursor: string | null | undefined;
    let added = 0;
    try {
      do {
        setGathering(`Gathering the matching devices… ${added}`);
        const p = await call<DevicePage>('GET', `/devices${qs({ ...filter, sort, order, limit: 500, cursor })}`);
        for (const d of p.items) if (ids.size < SELECT_MAX && !ids.has(d.id)) (ids.add(d.id), added++);
        cursor = p.nextCursor;
      } while (cursor && ids.size < SELECT_MAX);
      setSelected(ids);
      setGathering(cursor ? `Selected the first ${SELECT_MAX} (the most one selection holds).` : undefined);
    } catch (error) {
      setGathering(`Could not gather the devices: ${(error as Error).message}`);
    }
  };

  /** A new URL for this page: `push` adds a history entry (sort, paging), otherwise it replaces (typing). */
  const go = (change: Record<string, string | number | undefined>, push = true) => {
    const next = { ...filter, sort: sort === 'id' ? undefined : sort, order: order === 'asc' ? undefined : order, limit: limit === 100 ? undefined : limit, cursor: undefined, ...change };
    route(`${path}${qs(next)}`, !push);
  };

  // The search box types freely; the URL (and the request) follows 250 ms after the last key.
  const [text, setText] = useState(query.q ?? '');
  useEffect(() => setText(query.q ?? ''), [query.q]);
  useEffect(() => {
    if (text === (query.q ?? '')) return;
    const timer = setTimeout(() => go({ q: text || undefined }, false), 250);
    return () => clearTimeout(timer);
  }, [text]);
  const [tag, setTag] = useState(query.tag ?? '');
  useEffect(() => setTag(query.tag ?? ''), [query.tag]);

  const sortBy = (column: string) => go({ sort: column === 'id' ? undefined : column, order: column === sort && order === 'asc' ? 'desc' : undefined });
  const cols = useMemo(() => columns(thresholds), [thresholds.join(',')]);
  return (
    <main id="main">
      <h1>Devices</h1>
      <form
        class="filters"
        role="search"
        aria-label="Filter devices"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: text || undefined, tag: tag || undefined });
        }}
      >
        <label>
          Search
          <input type="search" name="q" value={text} maxLength={100} placeholder="id or tag" onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <label>
          State
          <select name="state" value={query.state ?? ''} onChange={(e) => go({ state: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tag
          <input name="tag" value={tag} maxLength={64} onInput={(e) => setTag(e.currentTarget.value)} onChange={(e) => go({ tag: e.currentTarget.value.trim() || undefined })} />
        </label>
        <label>
          Per page
          <select name="limit" value={String(limit)} onChange={(e) => go({ limit: Number(e.currentTarget.value) })}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          Score from
          <input type="number" name="minScore" min="0" max="1" step="0.05" value={query.minScore ?? ''} onChange={(e) => go({ minScore: e.currentTarget.value || undefined })} />
        </label>
        <label>
          Score to
          <input type="number" name="maxScore" min="0" max="1" step="0.05" value={query.maxScore ?? ''} onChange={(e) => go({ maxScore: e.currentTarget.value || undefined })} />
        </label>
        <label>
          Below the threshold of
          <select name="below" value={query.below ?? ''} onChange={(e) => go({ below: e.currentTarget.value || undefined })}>
            <option value="">any rule</option>
            {rules.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Apply</button>
        {filter.state || filter.tag || filter.q || filter.minScore || filter.maxScore || filter.below ? (
          <a href="/devices" class="clear">
            Clear filters
          </a>
        ) : null}
      </form>
      {page.error ? <Failure error={page.error} /> : null}
      {operator ? <BulkBar selected={selected} onPage={items.filter((d) => selected.has(d.id)).length} clear={() => (setSelected(new Set()), setGathering(undefined))} selectAll={() => void selectAllMatching()} gathering={gathering} done={page.reload} /> : null}
      <Table
        class="devices"
        columns={cols}
        rows={rows}
        rowKey={(d) => d.id}
        rowAttrs={(d) => ({ 'data-device': d.id })}
        caption={`Devices, sorted by ${sort} ${order === 'asc' ? 'ascending' : 'descending'}`}
        sort={{ key: sort, order, onSort: sortBy }}
        busy={page.loading}
        describedBy="devices-status"
        virtualAbove={VIRTUAL_ABOVE}
        {...(selection ? { selection } : {})}
      />
      <p id="devices-status" class="status" role="status">
        {page.loading ? 'Loading…' : `${items.length} device${items.length === 1 ? '' : 's'} on this page${query.cursor ? ' (not the first page)' : ''}.`}{' '}
        <span class={`live ${streaming ? 'on' : ''}`}>{streaming ? 'Scores and states update live.' : 'Live updates are not connected.'}</span>
      </p>
      <nav class="pager" aria-label="Device pages">
        {query.cursor ? <a href={`${path}${qs({ ...filter, sort: query.sort, order: query.order, limit: query.limit })}`}>First page</a> : null}
        {page.data?.nextCursor ? (
          <a href={`${path}${qs({ ...filter, sort: query.sort, order: query.order, limit: query.limit, cursor: page.data.nextCursor })}`} rel="next">
            Next page
          </a>
        ) : null}
        <a href={`/api/v1/devices${qs({ ...filter, sort, order, limit: 500, format: 'csv' })}`} download="devices.csv">
          Download CSV (up to 500)
        </a>
      </nav>
    </main>
  );
}
