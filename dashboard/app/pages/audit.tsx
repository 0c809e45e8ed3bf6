/** The audit log (GET /audit), newest first, a page at a time; the cursor and device filter live in the URL. */
import { useLocation } from 'preact-iso';
import type { AuditPage as AuditPageData } from '../../../protocol/api.js';
import { call, qs } from '../api.js';
import { Failure, Section, useLoad, useTitle } from '../ui.js';
import { AuditTable } from './device.js';

export function AuditPage() {
  useTitle('Audit log');
  const { query, path } = useLocation();
  const device = query.device;
  const key = qs({ device, cursor: query.cursor, limit: 100 });
  const page = useLoad(() => call<AuditPageData>('GET', `/audit${key}`), key);
  return (
    <main id="main">
      <h1>Audit log{device ? <> of <a href={`/devices/${encodeURIComponent(device)}`}>{device}</a></> : null}</h1>
      <Section title="Entries, newest first" source="GET /api/v1/audit">
        {page.error ? <Failure error={page.error} /> : null}
        {page.data ? <AuditTable items={page.data.items} showDevice={!device} /> : <p aria-busy="true">Loading…</p>}
        <nav class="pager" aria-label="Audit pages">
          {query.cursor ? <a href={`${path}${qs({ device })}`}>Newest</a> : null}
          {page.data?.nextCursor ? (
            <a href={`${path}${qs({ device, cursor: page.data.nextCursor })}`} rel="next">
              Older entries
            </a>
          ) : null}
          {device ? <a href={path}>All devices</a> : null}
          <a href={`/api/v1/audit${qs({ device, cursor: query.cursor, limit: 500, format: 'csv' })}`} download="audit.csv">
            Download CSV (up to 500)
          </a>
        </nav>
      </Section>
    </main>
  );
}
