/**
 * Overview: one section per data source. Devices by state, certificates expiring within 48 h, the score
 * distribution, devices below each policy threshold, vulnerabilities by severity and the top recommended actions
 * (GET /fleet/summary, reloaded after live changes), and a live feed of the trust stream (GET /trust/stream).
 */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { FleetSummary } from '../../../protocol/api.js';
import { SEVERITIES, STATES } from '../contract.js';
import { call, qs } from '../api.js';
import { type LiveEvent, useDebounced, useLive } from '../live.js';
import { Failure, Section, StateBadge, useLoad, useTitle } from '../ui.js';

function Histogram({ summary }: { summary: FleetSummary }) {
  const max = Math.max(1, ...summary.scoreHistogram.map((b) => b.devices));
  return (
    <ol class="histogram" aria-label="Devices by score band">
      {summary.scoreHistogram.map((b) => (
        <li key={b.from}>
          <a class="n" href={`/devices${qs({ minScore: b.from, maxScore: b.to, sort: 'score' })}`} aria-label={`${b.devices} device${b.devices === 1 ? '' : 's'} scoring ${b.from.toFixed(1)} to ${b.to.toFixed(1)}`}>
            {b.devices}
          </a>
          <span class="col" aria-hidden="true" style={{ height: `${((b.devices / max) * 75).toFixed(1)}%` }} />
          <span class="lbl" aria-hidden="true">
            {b.from.toFixed(1)}
          </span>
        </li>
      ))}
    </ol>
  );
}

function feedText(e: LiveEvent): { device?: string | null; text: string } | undefined {
  switch (e.type) {
    case 'score':
      return { device: e.data.device, text: `score ${e.data.score.toFixed(2)}${e.data.rawScore !== e.data.score ? ` (scored ${e.data.rawScore.toFixed(2)}, capped by its state)` : ''}` };
    case 'device':
      return { device: e.data.device, text: e.data.state ? `state ${e.data.state}, score ${e.data.score.toFixed(2)}` : 'left the fleet' };
    case 'revoked':
      return { device: e.data.device, text: `certificate ${e.data.serial} revoked` };
    case 'reset':
      return { text: `stream reset: ${e.data.reason}` };
    default:
      return undefined;
  }
}

function LiveFeed({ events, open }: { events: LiveEvent[]; open: boolean }) {
  return (
    <>
      <p class={`live ${open ? 'on' : ''}`}>{open ? 'Connected: new events appear at the top.' : 'Not connected to the event stream (reconnecting).'}</p>
      {events.length === 0 ? (
        <p class="muted">No events since this page opened.</p>
      ) : (
        <ol class="feed" aria-label="Live events, newest first" aria-live="polite">
          {events.map((e, i) => {
            const f = feedText(e)!;
            return (
              <li key={`${e.at}-${i}`}>
                <time dateTime={new Date(e.at).toISOString()}>{new Date(e.at).toLocaleTimeString()}</time> <span class="badge">{e.type}</span>{' '}
                {f.device ? <a href={`/devices/${encodeURIComponent(f.device)}`}>{f.device}</a> : null} {f.text}
              </li>
            );
          })}
        </ol>
      )}
    </>
  );
}

function ByState({ summary }: { summary: FleetSummary }) {
  const { total, byState } = summary.devices;
  return (
    <>
      <p class="big">
        <span class="number">{total}</span> device{total === 1 ? '' : 's'}
      </p>
      <ul class="bars" aria-label="Devices by state">
        {STATES.map((state) => {
          const n = byState[state] ?? 0;
          const share = total ? n / total : 0;
          return (
            <li key={state}>
              <a href={`/devices?state=${state}`} class="bar-label">
                <StateBadge state={state} /> <span class="count">{n}</span>
                <span class="visually-hidden"> devices {state}</span>
              </a>
              <span class="bar" aria-hidden="true">
                <span class={`fill state-${state}`} style={{ width: `${(share * 100).toFixed(1)}%` }} />
              </span>
            </li>
          );
        })}
      </ul>
    </>
  );
}

export function OverviewPage() {
  useTitle('Overview');
  const summary = useLoad(() => call<FleetSummary>('GET', '/fleet/summary'), 'summary');
  const [events, setEvents] = useState<LiveEvent[]>([]);
  const reload = useDebounced(summary.reload, 1000);
  const open = useLive((e) => {
    if (!feedText(e)) return;
    setEvents((list) => [e, ...list].slice(0, 50));
    reload();
  });
  const data = summary.data;
  const body = (f: (d: FleetSummary) => ComponentChildren) => (summary.error ? <Failure error={summary.error} /> : data ? f(data) : <p aria-busy="true">Loading…</p>);
  return (
    <main id="main">
      <h1>Fleet overview</h1>
      <div class="grid">
        <Section title="Devices by state" source="GET /api/v1/fleet/summary">
          {summary.error ? <Failure error={summary.error} /> : summary.data ? <ByState summary={summary.data} /> : <p aria-busy="true">Loading…</p>}
        </Section>
        <Section title="Certificates expiring within 48 h" source="GET /api/v1/fleet/summary">
          {summary.error ? (
            <Failure error={summary.error} />
          ) : summary.data ? (
            <>
              <p class="big">
                <span class={`number ${summary.data.certificatesExpiringWithin48h ? 'soon' : ''}`}>{summary.data.certificatesExpiringWithin48h}</span> certificate
                {summary.data.certificatesExpiringWithin48h === 1 ? '' : 's'}
              </p>
              <p>
                Agents renew on their own at two thirds of the lifetime; a certificate this close to expiry usually means a device that has been offline.{' '}
                <a href="/devices?sort=certificateExpiry&order=asc">Devices by certificate expiry</a>
              </p>
            </>
          ) : (
            <p aria-busy="true">Loading…</p>
          )}
        </Section>
        <Section title="Score distribution" source="GET /api/v1/fleet/summary">
          {body((d) => <Histogram summary={d} />)}
        </Section>
        <Section title="Devices below each threshold" source="GET /api/v1/fleet/summary">
          {body((d) =>
            d.belowThreshold.filter((b) => b.threshold > 0).length === 0 ? (
              <p>No policy rule needs a score.</p>
            ) : (
              <ul class="plain below">
                {d.belowThreshold.filter((b) => b.threshold > 0).map((b) => (
                  <li key={`${b.action}:${b.topic}`}>
                    <a href={`/devices${qs({ below: `${b.action}:${b.topic}`, sort: 'score' })}`}>
                      <strong>{b.devices}</strong> device{b.devices === 1 ? '' : 's'}
                    </a>{' '}
                    below {b.threshold} to {b.action} <code>{b.topic}</code>
                  </li>
                ))}
              </ul>
            ),
          )}
        </Section>
        <Section title="Vulnerabilities by severity" source="GET /api/v1/fleet/summary">
          {body((d) => (
            <ul class="plain vuln-summary">
              {SEVERITIES.map((s) => (
                <li key={s}>
                  <a href={`/vulnerabilities?severity=${s}`}>
                    <span class={`badge sev-${s}`}>{s}</span> <strong>{d.vulnerabilities[s]}</strong> finding{d.vulnerabilities[s] === 1 ? '' : 's'}
                  </a>
                </li>
              ))}
            </ul>
          ))}
        </Section>
        <Section title="Top recommended actions" source="GET /api/v1/fleet/summary">
          {body((d) =>
            d.topActions.length === 0 ? (
              <p>No open recommended actions.</p>
            ) : (
              <ol class="plain top-actions">
                {d.topActions.map((a) => (
                  <li key={a.id}>
                    <a href={`/actions#action-${encodeURIComponent(a.id)}`}>{a.title}</a> — <strong>{a.devices}</strong> device{a.devices === 1 ? '' : 's'}
                  </li>
                ))}
              </ol>
            ),
          )}
        </Section>
      </div>
      <Section title="Live events" source="GET /api/v1/trust/stream">
        <LiveFeed events={events} open={open} />
      </Section>
    </main>
  );
}
