/**
 * One device (GET /devices/{id}): state, tags, certificates with their chain of renewals, the audit trail, and the
 * actions the caller's role allows (quarantine, release, claim, tags for operators; revoke for admins), each behind a
 * confirmation that names the device. Score, factors, history, sessions, events, vulnerabilities and recommended
 * actions come with their routes, as sections of their own.
 */
import { useState } from 'preact/hooks';
import type { AuditEntryInfo, CertificateInfo, DeviceDetail, Whoami } from '../../../protocol/api.js';
import { call } from '../api.js';
import { REVOCATION_REASONS } from '../contract.js';
import { can, Confirm, Failure, Section, StateBadge, Time, useLoad, useTitle } from '../ui.js';

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
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Serial</th>
            <th scope="col">Status</th>
            <th scope="col">Valid from</th>
            <th scope="col">Valid until</th>
            <th scope="col">Renewed by</th>
            <th scope="col">SHA-256</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((c) => (
            <tr key={c.serial} id={`cert-${c.serial}`}>
              <th scope="row">
                <code>{c.serial}</code>
              </th>
              <td>
                <span class={`badge cert-${c.status}`}>{c.status}</span>
              </td>
              <td>
                <Time iso={c.notBefore} />
              </td>
              <td>
                <Time iso={c.notAfter} />
              </td>
              <td>{c.replacedBy ? <a href={`#cert-${c.replacedBy}`}><code>{c.replacedBy}</code></a> : <span class="muted">—</span>}</td>
              <td>
                <code class="fingerprint" title={c.fingerprint}>
                  {c.fingerprint.slice(0, 16)}…
                </code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function AuditTable({ items, showDevice = true }: { items: AuditEntryInfo[]; showDevice?: boolean }) {
  if (items.length === 0) return <p>No entries.</p>;
  return (
    <div class="table-wrap">
      <table class="audit">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            {showDevice ? <th scope="col">Device</th> : null}
            <th scope="col">Outcome</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.seq}>
              <td>
                <Time iso={e.time} />
              </td>
              <td>
                <code>{e.actor}</code>
              </td>
              <td>{e.action}</td>
              {showDevice ? <td>{e.device ? <a href={`/devices/${encodeURIComponent(e.device)}`}>{e.device}</a> : <span class="muted">{e.target ?? '—'}</span>}</td> : null}
              <td>
                <span class={`badge outcome-${e.outcome}`}>{e.outcome}</span>
              </td>
              <td>{e.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
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

export function DevicePage({ id, who }: { id: string; who: Whoami }) {
  useTitle(`Device ${id}`);
  const detail = useLoad(() => call<DeviceDetail>('GET', `/devices/${encodeURIComponent(id)}`), id);
  const [pending, setPending] = useState<Action>();
  const [reason, setReason] = useState<(typeof REVOCATION_REASONS)[number]>('unspecified');
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const device = detail.data;

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
