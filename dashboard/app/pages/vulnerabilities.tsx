/** Vulnerabilities across the fleet (GET /vulnerabilities): by CVE, each with its devices, versions and fix command; filter by severity and text. */
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { VulnList } from '../../../protocol/fleet-api.js';
import { call, qs } from '../api.js';
import { Table } from '../table.js';
import { SEVERITIES } from '../contract.js';
import { Failure, useLoad, useTitle } from '../ui.js';

export function VulnerabilitiesPage() {
  useTitle('Vulnerabilities');
  const { query, route, path } = useLocation();
  const severity = (SEVERITIES as readonly string[]).includes(query.severity ?? '') ? query.severity : undefined;
  const q = /^[A-Za-z0-9._:+~-]{1,100}$/.test(query.q ?? '') ? query.q : undefined;
  const key = qs({ severity, q });
  const list = useLoad(() => call<VulnList>('GET', `/vulnerabilities${key}`), key);
  const [text, setText] = useState(q ?? '');
  useEffect(() => setText(q ?? ''), [q]);
  const go = (change: Record<string, string | undefined>) => route(`${path}${qs({ severity, q, ...change })}`);
  return (
    <main id="main">
      <h1>Vulnerabilities</h1>
      <form
        class="filters"
        role="search"
        aria-label="Filter vulnerabilities"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: text.trim() || undefined });
        }}
      >
        <label>
          CVE or package
          <input type="search" name="q" value={text} maxLength={100} pattern="[A-Za-z0-9._:+~\-]*" onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <label>
          Severity
          <select name="severity" value={severity ?? ''} onChange={(e) => go({ severity: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Apply</button>
        <a href={`/api/v1/vulnerabilities${qs({ severity, q, format: 'csv' })}`} download="vulnerabilities.csv" class="clear">
          Download CSV
        </a>
      </form>
      {list.error ? <Failure error={list.error} /> : null}
      <p class="status" role="status">
        {list.loading ? 'Loading…' : list.data ? `${list.data.total} CVE${list.data.total === 1 ? '' : 's'}${list.data.items.length < list.data.total ? `, the worst ${list.data.items.length} shown` : ''}.` : ''}
      </p>
      {list.data?.items.map((v) => (
        <section class="card" key={v.cve} aria-labelledby={`h-${v.cve}`}>
          <h2 id={`h-${v.cve}`}>
            {v.cve} <span class={`badge sev-${v.severity}`}>{v.severity}</span>
          </h2>
          <Table
            class="vulns-table"
            rows={v.devices}
            rowKey={(d) => `${d.id}-${d.package}`}
            columns={[
              { key: 'device', label: 'Device', rowHeader: true, cell: (d) => <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a> },
              { key: 'package', label: 'Package', cell: (d) => d.package },
              {
                key: 'versions',
                label: 'Installed → fixed',
                cell: (d) => (
                  <>
                    <code>{d.installed}</code> → <code>{d.fixed}</code>
                  </>
                ),
              },
              { key: 'fix', label: 'Fix command', cell: (d) => <code>{d.fixCommand}</code> },
            ]}
          />
        </section>
      ))}
      <p class="source">
        from <code>GET /api/v1/vulnerabilities</code>
      </p>
    </main>
  );
}
