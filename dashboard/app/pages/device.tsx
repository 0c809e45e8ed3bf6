/**
 * One device (GET /devices/{id}): state, tags, certificates with their chain of renewals, the audit trail, and the
 * actions the caller's role allows (quarantine, release, claim, tags for operators; revoke for admins), each behind a
 * confirmation that names the device; its score (coloured by the policy thresholds of GET /policies), every factor
 * with reason and fix, the score history (an inline SVG chart), sessions, behaviour events, vulnerability findings
 * with the fix command, and recommended actions with snooze / ignore for operators. The trust stream reloads the
 * page's data when this device's score, state or certificates change.
 */
import { useState } from 'preact/hooks';
import type { AuditEntryInfo, CertificateInfo, DeviceDetail, Whoami } from '../../../protocol/api.js';
import type { DeviceAction, PolicyList } from '../../../protocol/fleet-api.js';
import { call } from '../api.js';
import { ScoreChart } from '../chart.js';
import { REVOCATION_REASONS, SNOOZES } from '../contract.js';
import { useDebounced, useLive } from '../live.js';
import { Table, type Column } from '../table.js';
import { can, Confirm, Failure, relative, Score, Section, StateBadge, thresholdsOf, Time, useLoad, useTitle } from '../ui.js';

type Action = 'quarantine' | 'release' | 'claim' | 'revoke';
const ACTIONS: Record<Action, { label: string; least: 'operator' | 'admin'; when: (state: string) => boolean; explain: string; danger?: boolean }> = {
  quarantine: { label: 'Quarantine', least: 'operator', when: (s) => s === 'active' || s === 'unclaimed', explain: 'Its score ceiling becomes 0 in the broker at once: it loses every topic that needs trust.', danger: true },
  release: { label: 'Release', least: 'operator', when: (s) => s === 'quarantined', explain: 'It gets its own score back in the broker.' },
  claim: { label: 'Claim', least: 'operator', when: (s) => s === 'unclaimed', explain: 'It becomes active: its score is no longer capped at 0.' },
  revoke: { label: 'Revoke', least: 'admin', when: (s) => s !== 'revoked', explain: 'Every certificate of it is revoked (CRL, OCSP) and its live MQTT sessions are closed. This cannot be undone.', danger: true },
};

/** Certificates newest first, each with what renewed it. */
function Certificates({ certs }: { certs: CertificateInfo[] }) {
  if (certs.length === 0) return <p>No certificates.</p>;
  const sorted = [...certs].sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
  return (
    <Table
      rows={sorted}
      rowKey={(c) => c.serial}
      rowAttrs={(c) => ({ id: `cert-${c.serial}` })}
      columns={[
        { key: 'serial', label: 'Serial', rowHeader: true, cell: (c) => <code>{c.serial}</code> },
        { key: 'status', label: 'Status', cell: (c) => <span class={`badge cert-${c.status}`}>{c.status}</span> },
        { key: 'from', label: 'Valid from', cell: (c) => <Time iso={c.notBefore} /> },
        { key: 'until', label: 'Valid until', cell: (c) => <Time iso={c.notAfter} /> },
        { key: 'renewed', label: 'Renewed by', cell: (c) => (c.replacedBy ? <a href={`#cert-${c.replacedBy}`}><code>{c.replacedBy}</code></a> : <span class="muted">—</span>) },
        {
          key: 'fp',
          label: 'SHA-256',
          cell: (c) => (
            <code class="fingerprint" title={c.fingerprint}>
              {c.fingerprint.slice(0, 16)}…
            </code>
          ),
        },
      ]}
    />
  );
}

export function AuditTable({ items, showDevice = true }: { items: AuditEntryInfo[]; showDevice?: boolean }) {
  if (items.length === 0) return <p>No entries.</p>;
  const columns: Array<Column<AuditEntryInfo>> = [
    { key: 'time', label: 'Time', cell: (e) => <Time iso={e.time} /> },
    { key: 'actor', label: 'Who', cell: (e) => <code>{e.actor}</code> },
    { key: 'action', label: 'Action', cell: (e) => e.action },
    ...(showDevice
      ? [{ key: 'device', label: 'Device', cell: (e: AuditEntryInfo) => (e.device ? <a href={`/devices/${encodeURIComponent(e.device)}`}>{e.device}</a> : <span class="muted">{e.target ?? '—'}</span>) }]
      : []),
    { key: 'outcome', label: 'Outcome', cell: (e) => <span class={`badge outcome-${e.outcome}`}>{e.outcome}</span> },
    { key: 'detail', label: 'Detail', cell: (e) => e.detail ?? '' },
  ];
  return <Table class="audit" rows={items} rowKey={(e) => String(e.seq)} columns={columns} />;
}

function Tags({ device, editable, onSaved }: { device: DeviceDetail; editable: boolean; onSaved: () => void }) {
  const [text, setText] = useState(device.tags.join(' '));
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  if (!editable) {
    return device.tags.length ? (
      <p>
        {device.tags.map((t) => (
          <a key={t} class="tag" href={`/devices?tag=${encodeURIComponent(t)}`}>
            {t}
          </a>
        ))}
      </p>
    ) : (
      <p class="muted">No tags.</p>
    );
  }
  return (
    <form
      class="tags-form"
      onSubmit={(e) => {
        e.preventDefault();
        setSaved(false);
        const tags = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
        call('PUT', `/devices/${encodeURIComponent(device.id)}/tags`, { tags }).then(
          () => {
            setError(undefined);
            setSaved(true);
            onSaved();
          },
          setError,
        );
      }}
    >
      <label>
        Tags (separated by spaces)
        <input name="tags" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <button type="submit">Save tags</button>
      {saved ? <span role="status">Saved.</span> : null}
      {error ? <Failure error={error} /> : null}
    </form>
  );
}

function Factors({ device }: { device: DeviceDetail }) {
  if (device.factors.length === 0) return <p class="muted">No factors: no score message seen yet (the initial score applies).</p>;
  return (
    <Table
      class="factors stack"
      rows={device.factors}
      rowKey={(f) => f.id}
      columns={[
        { key: 'factor', label: 'Factor', rowHeader: true, cell: (f) => <code>{f.id}</code> },
        {
          key: 'contribution',
          label: 'Contribution',
          cellClass: (f) => (f.contribution < 0 ? 'factor-neg' : f.contribution > 0 ? 'factor-pos' : undefined),
          cell: (f) => `${f.contribution > 0 ? '+' : ''}${f.contribution.toFixed(2)}`,
        },
        { key: 'reason', label: 'Reason', cell: (f) => f.reason },
        { key: 'fix', label: 'Fix', cell: (f) => (f.fix ? <code>{f.fix}</code> : <span class="muted">—</span>) },
      ]}
    />
  );
}

function Findings({ device }: { device: DeviceDetail }) {
  if (device.findings.length === 0) return <p>No known vulnerabilities in its reported packages.</p>;
  return (
    <Table
      class="findings stack"
      rows={device.findings}
      rowKey={(f) => `${f.cve}-${f.package}`}
      columns={[
        { key: 'cve', label: 'CVE', rowHeader: true, cell: (f) => <a href={`/vulnerabilities?q=${encodeURIComponent(f.cve)}`}>{f.cve}</a> },
        {
          key: 'severity',
          label: 'Severity',
          cell: (f) => (
            <>
              <span class={`badge sev-${f.severity}`}>{f.severity}</span>
              {f.remote ? <span class="muted"> remote</span> : null}
              {f.exposed ? <span class="muted"> exposed</span> : null}
            </>
          ),
        },
        { key: 'package', label: 'Package', cell: (f) => f.package },
        {
          key: 'versions',
          label: 'Installed → fixed',
          cell: (f) => (
            <>
              <code>{f.installed}</code> → <code>{f.fixed}</code>
            </>
          ),
        },
        { key: 'fix', label: 'Fix command', cell: (f) => <code class="fix-cmd">{f.fixCommand}</code> },
      ]}
    />
  );
}

/** Snooze / ignore / un-ignore one recommended action on one device (operators; the API audits each). */
export function ActionButtons({ device, action, status, onDone }: { device: string; action: string; status: DeviceAction['status']; onDone: (text: string, ok: boolean) => void }) {
  const path = `/devices/${encodeURIComponent(device)}/actions/${encodeURIComponent(action)}`;
  const run = (method: 'POST' | 'DELETE', suffix: string, body: unknown, what: string) =>
    call(method, `${path}${suffix}`, body).then(
      () => onDone(`${what}: ${action} on ${device}.`, true),
      (error: Error) => onDone(`${what} refused: ${error.message}`, false),
    );
  return (
    <span class="row-buttons">
      {status === 'open' ? (
        <>
          {SNOOZES.map((d) => (
            <button key={d} type="button" onClick={() => run('POST', '/snooze', { duration: d }, `Snoozed for ${d}`)} aria-label={`Snooze ${d}: ${action} on ${device}`}>
              Snooze {d}
            </button>
          ))}
          <button type="button" onClick={() => run('POST', '/ignore', undefined, 'Ignored')} aria-label={`Ignore: ${action} on ${device}`}>
            Ignore
          </button>
        </>
      ) : (
        <button type="button" onClick={() => run('DELETE', '', undefined, status === 'ignored' ? 'Un-ignored' : 'Un-snoozed')} aria-label={`${status === 'ignored' ? 'Un-ignore' : 'Un-snooze'}: ${action} on ${device}`}>
          {status === 'ignored' ? 'Un-ignore' : 'Un-snooze'}
        </button>
      )}
    </span>
  );
}

function Recommended({ device, who, onChanged }: { device: DeviceDetail; who: Whoami; onChanged: () => void }) {
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  if (device.actions.length === 0) return <p>Nothing to do: no recommended actions.</p>;
  const operator = can(who.role, 'operator');
  return (
    <>
      <Table
        class="device-actions stack"
        rows={device.actions}
        rowKey={(a) => a.id}
        rowAttrs={(a) => ({ 'data-action': a.id })}
        columns={[
          { key: 'action', label: 'Action', rowHeader: true, cell: (a) => a.title },
          { key: 'cost', label: 'Costs', cellClass: () => 'factor-neg', cell: (a) => a.cost.toFixed(2) },
          {
            key: 'status',
            label: 'Status',
            cell: (a) => (
              <>
                <span class={`badge status-${a.status}`}>{a.status}</span>
                {a.snoozedUntil ? <span class="muted"> until {new Date(a.snoozedUntil).toLocaleString()}</span> : null}
              </>
            ),
          },
          { key: 'fix', label: 'Fix', cell: (a) => <code>{a.fix}</code> },
          ...(operator
            ? [
                {
                  key: 'decide',
                  label: 'Decide',
                  cell: (a: DeviceAction) => (
                    <ActionButtons
                      device={device.id}
                      action={a.id}
                      status={a.status}
                      onDone={(text, ok) => {
                        setResult({ text, ok });
                        if (ok) onChanged();
                      }}
                    />
                  ),
                },
              ]
            : []),
        ]}
      />
      {result ? (
        <p role="status" class={result.ok ? 'ok' : 'error'}>
          {result.text}
        </p>
      ) : null}
    </>
  );
}

export function DevicePage({ id, who }: { id: string; who: Whoami }) {
  useTitle(`Device ${id}`);
  const detail = useLoad(() => call<DeviceDetail>('GET', `/devices/${encodeURIComponent(id)}`), id);
  const [pending, setPending] = useState<Action>();
  const [reason, setReason] = useState<(typeof REVOCATION_REASONS)[number]>('unspecified');
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const device = detail.data;
  const policies = useLoad(() => call<PolicyList>('GET', '/policies'), 'policies');
  const thresholds = thresholdsOf(policies.data);
  const reload = useDebounced(detail.reload, 300);
  useLive((e) => {
    if ((e.type === 'score' || e.type === 'device' || e.type === 'revoked') && e.data.device === id) reload();
    else if (e.type === 'reset') reload();
  });

  const act = (action: Action) => {
    setPending(undefined);
    const body = action === 'revoke' ? { reason } : undefined;
    call('POST', `/devices/${encodeURIComponent(id)}/${action}`, body).then(
      () => {
        setResult({ ok: true, text: `${ACTIONS[action].label}: done.` });
        detail.reload();
      },
      (error: Error) => setResult({ ok: false, text: `${ACTIONS[action].label} refused: ${error.message}` }),
    );
  };
  const actions = device ? (Object.keys(ACTIONS) as Action[]).filter((a) => can(who.role, ACTIONS[a].least) && ACTIONS[a].when(device.state)) : [];

  return (
    <main id="main">
      <p class="crumbs">
        <a href="/devices">Devices</a> /
      </p>
      <h1>
        Device <span class="device-id">{id}</span> {device ? <StateBadge state={device.state} /> : null}
      </h1>
      {detail.error ? <Failure error={detail.error} /> : null}
      {!device && !detail.error ? <p aria-busy="true">Loading…</p> : null}
      {device ? (
        <>
          <dl class="facts">
            <dt>Score</dt>
            <dd class="device-score">
              <Score score={device.score} thresholds={thresholds} />{' '}
              {device.scoredAt ? <span class="muted">scored {relative(device.scoredAt)}{device.modelVersion ? ` by model ${device.modelVersion}` : ''}</span> : <span class="muted">not scored yet</span>}
            </dd>
            <dt>Connected</dt>
            <dd>{device.sessions.length ? `yes, ${device.sessions.length} session${device.sessions.length === 1 ? '' : 's'}` : 'no'}</dd>
            <dt>State</dt>
            <dd>
              <StateBadge state={device.state} />
            </dd>
            <dt>Enrolled</dt>
            <dd>
              <Time iso={device.createdAt} />
            </dd>
            <dt>Updated</dt>
            <dd>
              <Time iso={device.updatedAt} />
            </dd>
            <dt>Certificate expires</dt>
            <dd>
              <Time iso={device.certificateExpiry} />
            </dd>
          </dl>
          {actions.length ? (
            <section class="card actions" aria-labelledby="s-actions">
              <h2 id="s-actions">Actions</h2>
              <div class="buttons">
                {actions.map((a) => (
                  <button key={a} type="button" class={ACTIONS[a].danger ? 'danger' : 'primary'} onClick={() => setPending(a)}>
                    {ACTIONS[a].label}…
                  </button>
                ))}
              </div>
              {result ? (
                <p role="status" class={result.ok ? 'ok' : 'error'}>
                  {result.text}
                </p>
              ) : null}
            </section>
          ) : null}
          {actions.length ? (
          <Confirm
            open={pending !== undefined}
            title={pending ? `${ACTIONS[pending].label} ${id}?` : ''}
            message={pending ? <>{`${ACTIONS[pending].label} device `}<strong>{id}</strong>{`. ${ACTIONS[pending].explain}`}</> : ''}
            confirmLabel={pending ? `${ACTIONS[pending].label} ${id}` : ''}
            danger={pending ? ACTIONS[pending].danger ?? false : false}
            onConfirm={() => pending && act(pending)}
            onCancel={() => setPending(undefined)}
          >
            {pending === 'revoke' ? (
              <label>
                Reason (in the CRL)
                <select value={reason} onChange={(e) => setReason(e.currentTarget.value as typeof reason)}>
                  {REVOCATION_REASONS.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </label>
            ) : null}
          </Confirm>
          ) : null}
          <Section title="Score factors" source={`GET /api/v1/devices/${id}`}>
            <Factors device={device} />
          </Section>
          <Section title="Score history" source={`GET /api/v1/devices/${id}`}>
            <ScoreChart points={device.history} thresholds={thresholds} label={`Score history of ${id}`} />
          </Section>
          <Section title="Recommended actions" source={`GET /api/v1/devices/${id}`}>
            <Recommended device={device} who={who} onChanged={detail.reload} />
          </Section>
          <Section title="Vulnerabilities" source={`GET /api/v1/devices/${id}`}>
            <Findings device={device} />
          </Section>
          <Section title="Sessions" source={`GET /api/v1/devices/${id}`}>
            {device.sessions.length ? (
              <ul class="plain sessions">
                {device.sessions.map((s) => (
                  <li key={s.clientId}>
                    <code>{s.clientId}</code> since <Time iso={s.since} />
                    {s.remoteAddress ? <> from <code>{s.remoteAddress}</code></> : null}
                  </li>
                ))}
              </ul>
            ) : (
              <p>Not connected.</p>
            )}
          </Section>
          <Section title="Behaviour events" source={`GET /api/v1/devices/${id}`}>
            {device.events.length ? (
              <ul class="plain events">
                {device.events.map((e, i) => (
                  <li key={i}>
                    <strong>{e.type}</strong> <Time iso={e.time} />
                    {e.topic ? <> on <code>{e.topic}</code></> : null}
                    {e.reason ? <> — {e.reason}</> : null}
                    {e.remoteAddress ? <span class="muted"> from {e.remoteAddress}</span> : null}
                  </li>
                ))}
              </ul>
            ) : (
              <p>No recent behaviour events.</p>
            )}
          </Section>
          <Section title="Tags" source={`GET /api/v1/devices/${id}`}>
            <Tags key={device.id} device={device} editable={can(who.role, 'operator')} onSaved={detail.reload} />
          </Section>
          <Section title="Certificates and renewals" source={`GET /api/v1/devices/${id}`}>
            <Certificates certs={device.certificates} />
          </Section>
          <Section title="Audit trail" source={`GET /api/v1/devices/${id}`}>
            <AuditTable items={device.audit} showDevice={false} />
            <p>
              <a href={`/audit?device=${encodeURIComponent(id)}`}>The whole audit log of this device</a>
            </p>
          </Section>
        </>
      ) : null}
    </main>
  );
}
