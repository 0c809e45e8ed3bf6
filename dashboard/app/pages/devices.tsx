/**
 * Devices: the API's device list, one page at a time (the API sorts, filters and pages by cursor, so the page stays
 * light with any number of devices). Filters, sort and page live in the URL: they survive a reload, can be shared,
 * and the back button walks back through them.
 */
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { DevicePage } from '../../../protocol/api.js';
import type { PolicyList } from '../../../protocol/fleet-api.js';
import { call, qs } from '../api.js';
import { SORT_KEYS, STATES, type SortKey } from '../contract.js';
import { useLive } from '../live.js';
import { Expiry, Failure, relative, Score, StateBadge, thresholdsOf, useLoad, useTitle, VulnCounts } from '../ui.js';

const PAGE_SIZES = [50, 100, 250, 500];
const COLUMNS: Array<{ key: SortKey | 'tags' | 'connected' | 'vulnerabilities'; label: string }> = [
  { key: 'id', label: 'Device' },
  { key: 'score', label: 'Score' },
  { key: 'state', label: 'State' },
  { key: 'tags', label: 'Tags' },
  { key: 'connected', label: 'Connected' },
  { key: 'lastReport', label: 'Last report' },
  { key: 'certificateExpiry', label: 'Certificate expires' },
  { key: 'vulnerabilities', label: 'Vulnerabilities' },
  { key: 'updatedAt', label: 'Updated' },
];
const UNSORTABLE = new Set(['tags', 'connected', 'vulnerabilities']);
const bound = (v: string | undefined) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) && Number(v) >= 0 && Number(v) <= 1 ? v : undefined);

export function DevicesPage() {
  useTitle('Devices');
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

  // Live: scores and states from the trust stream replace what the page loaded, without a reload.
  const [live, setLive] = useState<Record<string, { score?: number; state?: string }>>({});
  useEffect(() => setLive({}), [page.data]);
  const streaming = useLive((e) => {
    if (e.type === 'score') setLive((m) => ({ ...m, [e.data.device]: { ...m[e.data.device], score: e.data.score, ...(e.data.state ? { state: e.data.state } : {}) } }));
    else if (e.type === 'device' && e.data.state) setLive((m) => ({ ...m, [e.data.device]: { ...m[e.data.device], score: e.data.score, state: e.data.state! } }));
  });

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

  const sortBy = (column: SortKey) => go({ sort: column === 'id' ? undefined : column, order: column === sort && order === 'asc' ? 'desc' : undefined });
  const items = page.data?.items ?? [];
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
      <div class="table-wrap">
        <table class="devices" aria-busy={page.loading ? 'true' : 'false'} aria-describedby="devices-status">
          <caption class="visually-hidden">Devices, sorted by {sort} {order === 'asc' ? 'ascending' : 'descending'}</caption>
          <thead>
            <tr>
              {COLUMNS.map((c) =>
                UNSORTABLE.has(c.key) ? (
                  <th key={c.key} scope="col">
                    {c.label}
                  </th>
                ) : (
                  <th key={c.key} scope="col" class={`col-${c.key}`} aria-sort={sort === c.key ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
                    <button type="button" class="sort" onClick={() => sortBy(c.key as SortKey)}>
                      {c.label}
                      <span aria-hidden="true">{sort === c.key ? (order === 'asc' ? ' ▲' : ' ▼') : ''}</span>
                    </button>
                  </th>
                ),
              )}
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id} data-device={d.id}>
                <th scope="row">
                  <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a>
                </th>
                <td class="col-score" title={d.worstFactor ? `costs most: ${d.worstFactor.reason}` : undefined}>
                  <Score score={live[d.id]?.score ?? d.score} thresholds={thresholds} />
                </td>
                <td class="col-state">
                  <StateBadge state={live[d.id]?.state ?? d.state} />
                </td>
                <td>
                  {d.tags.map((t) => (
                    <a key={t} class="tag" href={`/devices${qs({ tag: t })}`}>
                      {t}
                    </a>
                  ))}
                </td>
                <td class="col-connected">
                  {d.connected ? (
                    <span title={`since ${d.connected.since}${d.connected.remoteAddress ? ` from ${d.connected.remoteAddress}` : ''}`}>
                      yes{d.connected.sessions > 1 ? ` (${d.connected.sessions})` : ''}
                    </span>
                  ) : (
                    <span class="muted">no</span>
                  )}
                </td>
                <td class="col-lastReport">
                  {d.lastReport ? (
                    <time dateTime={d.lastReport} title={d.lastReport}>
                      {relative(d.lastReport)}
                    </time>
                  ) : (
                    <span class="muted">never</span>
                  )}
                </td>
                <td>
                  <Expiry iso={d.certificateExpiry} />
                </td>
                <td class="col-vulnerabilities">
                  <VulnCounts counts={d.vulnerabilities} />
                </td>
                <td class="col-updatedAt">
                  <time dateTime={d.updatedAt} title={d.updatedAt}>
                    {relative(d.updatedAt)}
                  </time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
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
