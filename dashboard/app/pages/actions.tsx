/** Recommended actions across the fleet (GET /actions): grouped, with the affected devices; operators snooze, ignore and un-ignore per device. */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { Whoami } from '../../../protocol/api.js';
import type { ActionList } from '../../../protocol/fleet-api.js';
import { call, qs } from '../api.js';
import { Table } from '../table.js';
import { can, Failure, useLoad, useTitle } from '../ui.js';
import { ActionButtons } from './device.js';

const STATUSES = ['open', 'snoozed', 'ignored', 'all'] as const;

export function ActionsPage({ who }: { who: Whoami }) {
  useTitle('Recommended actions');
  const { query, route, path } = useLocation();
  const status = (STATUSES as readonly string[]).includes(query.status ?? '') ? query.status! : 'open';
  const key = qs({ status, devices: 50 });
  const list = useLoad(() => call<ActionList>('GET', `/actions${key}`), key);
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const operator = can(who.role, 'operator');
  return (
    <main id="main">
      <h1>Recommended actions</h1>
      <form class="filters" aria-label="Filter actions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Show
          <select name="status" value={status} onChange={(e) => route(`${path}${qs({ status: e.currentTarget.value === 'open' ? undefined : e.currentTarget.value })}`)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <a href={`/api/v1/actions${qs({ status, format: 'csv' })}`} download="actions.csv" class="clear">
          Download CSV
        </a>
      </form>
      {result ? (
        <p role="status" class={result.ok ? 'ok' : 'error'}>
          {result.text}
        </p>
      ) : null}
      {list.error ? <Failure error={list.error} /> : null}
      {list.data && list.data.items.length === 0 ? <p>No {status === 'all' ? '' : `${status} `}recommended actions.</p> : null}
      {list.data?.items.map((g) => (
        <section class="card" key={g.id} id={`action-${g.id}`} aria-labelledby={`h-${g.id}`}>
          <h2 id={`h-${g.id}`}>{g.title}</h2>
          <p>
            <strong>{g.affected}</strong> device{g.affected === 1 ? '' : 's'} affected, <strong>{g.open}</strong> open. Fix: <code>{g.fix}</code>
          </p>
          <Table
            rows={g.devices}
            rowKey={(d) => d.id}
            columns={[
              { key: 'device', label: 'Device', rowHeader: true, cell: (d) => <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a> },
              { key: 'cost', label: 'Costs', cellClass: () => 'factor-neg', cell: (d) => d.cost.toFixed(2) },
              {
                key: 'status',
                label: 'Status',
                cell: (d) => (
                  <>
                    <span class={`badge status-${d.status}`}>{d.status}</span>
                    {d.snoozedUntil ? <span class="muted"> until {new Date(d.snoozedUntil).toLocaleString()}</span> : null}
                  </>
                ),
              },
              ...(operator
                ? [
                    {
                      key: 'decide',
                      label: 'Decide',
                      cell: (d: (typeof g.devices)[number]) => (
                        <ActionButtons
                          device={d.id}
                          action={g.id}
                          status={d.status}
                          onDone={(text, ok) => {
                            setResult({ text, ok });
                            if (ok) list.reload();
                          }}
                        />
                      ),
                    },
                  ]
                : []),
            ]}
          />
          {g.devices.length < g.affected ? <p class="muted">The {g.devices.length} costliest shown; the CSV lists them all.</p> : null}
        </section>
      ))}
      <p class="source">
        from <code>GET /api/v1/actions</code>
      </p>
    </main>
  );
}
