/**
 * Operators and sessions (admins only; the API refuses everyone else anyway): the operator certificates the CA
 * issued (GET /operators: name, role, serial, expiry, revoked) with a confirmed revoke that names the certificate
 * (POST /operators/{serial}/revoke), and the live browser sessions (GET /sessions) with a confirmed end
 * (DELETE /sessions/{id}). Names and addresses are shown as text only.
 */
import { useState } from 'preact/hooks';
import type { OperatorCertificate, OperatorList, Whoami } from '../../../protocol/api.js';
import { call } from '../api.js';
import { REVOCATION_REASONS } from '../contract.js';
import { Table } from '../table.js';
import { can, Confirm, Expiry, Failure, Section, Time, useLoad, useTitle } from '../ui.js';

type SessionInfo = { id: string; role: string; name: string; createdAt: string; expiresAt: string; source: string | null };
type Result = { ok: boolean; text: string } | undefined;
type Pending = { kind: 'revoke'; operator: OperatorCertificate } | { kind: 'end'; session: SessionInfo };

function Status({ result }: { result: Result }) {
  return result ? (
    <p role="status" class={result.ok ? 'ok' : 'error'}>
      {result.text}
    </p>
  ) : null;
}

const shortSerial = (serial: string) => (serial.length > 16 ? `${serial.slice(0, 16)}…` : serial);

export function OperatorsPage({ who }: { who: Whoami }) {
  useTitle('Operators and sessions');
  const admin = can(who.role, 'admin');
  const operators = useLoad(() => (admin ? call<OperatorList>('GET', '/operators') : Promise.resolve({ items: [] })), 'operators');
  const sessions = useLoad(() => (admin ? call<{ items: SessionInfo[] }>('GET', '/sessions') : Promise.resolve({ items: [] })), 'sessions');
  const [pending, setPending] = useState<Pending>();
  const [reason, setReason] = useState<(typeof REVOCATION_REASONS)[number]>('affiliationChanged');
  const [operatorResult, setOperatorResult] = useState<Result>();
  const [sessionResult, setSessionResult] = useState<Result>();
  if (!admin) {
    return (
      <main id="main">
        <h1>Operators and sessions</h1>
        <p>Listing operators and sessions, revoking certificates and ending sessions needs the admin role; this session is {who.role}.</p>
      </main>
    );
  }
  const revoke = (o: OperatorCertificate) => {
    setPending(undefined);
    call<OperatorCertificate>('POST', `/operators/${encodeURIComponent(o.serial)}/revoke`, { reason }).then(
      () => {
        setOperatorResult({ ok: true, text: `Revoked the ${o.role} certificate of ${o.name} (serial ${o.serial}).` });
        operators.reload();
      },
      (error: Error) => setOperatorResult({ ok: false, text: `Not revoked: ${error.message}` }),
    );
  };
  const end = (s: SessionInfo) => {
    setPending(undefined);
    call('DELETE', `/sessions/${encodeURIComponent(s.id)}`).then(
      () => {
        setSessionResult({ ok: true, text: `Ended the session of ${s.name}.` });
        sessions.reload();
      },
      (error: Error) => setSessionResult({ ok: false, text: `Not ended: ${error.message}` }),
    );
  };
  return (
    <main id="main">
      <h1>Operators and sessions</h1>
      <Section title="Operator certificates" source="GET /api/v1/operators">
        {operators.error ? <Failure error={operators.error} /> : null}
        <Status result={operatorResult} />
        {operators.data ? (
          operators.data.items.length ? (
            <Table
              class="operators stack"
              rows={operators.data.items}
              rowKey={(o) => o.serial}
              rowAttrs={(o) => ({ 'data-serial': o.serial })}
              columns={[
                { key: 'name', label: 'Name', rowHeader: true, cell: (o) => o.name },
                { key: 'role', label: 'Role', cell: (o) => <span class={`badge role-${o.role}`}>{o.role}</span> },
                { key: 'serial', label: 'Serial', cell: (o) => <code title={o.serial}>{shortSerial(o.serial)}</code> },
                { key: 'issued', label: 'Issued', cell: (o) => <Time iso={o.issuedAt} /> },
                { key: 'expires', label: 'Expires', cell: (o) => <Expiry iso={o.notAfter} /> },
                {
                  key: 'status',
                  label: 'Status',
                  cell: (o) =>
                    o.status === 'revoked' ? (
                      <span>
                        <span class="badge cert-revoked">revoked</span> <Time iso={o.revokedAt} />
                        {o.revocationReason ? <span class="muted"> ({o.revocationReason})</span> : null}
                      </span>
                    ) : (
                      <span class={`badge cert-${o.status === 'active' ? 'active' : 'superseded'}`}>{o.status}</span>
                    ),
                },
                {
                  key: 'actions',
                  label: 'Actions',
                  hiddenLabel: true,
                  cell: (o) =>
                    o.status === 'active' ? (
                      <button type="button" class="danger" onClick={() => setPending({ kind: 'revoke', operator: o })}>
                        Revoke…<span class="visually-hidden"> the {o.role} certificate of {o.name}</span>
                      </button>
                    ) : null,
                },
              ]}
            />
          ) : (
            <p>No operator certificates yet.</p>
          )
        ) : (
          <p aria-busy="true">Loading…</p>
        )}
        <p class="hint">
          Issued on the gateway's host with <code>npx wott operator create NAME --role ROLE --out DIR</code>.
        </p>
      </Section>
      <Section title="Live browser sessions" source="GET /api/v1/sessions">
        {sessions.error ? <Failure error={sessions.error} /> : null}
        <Status result={sessionResult} />
        {sessions.data ? (
          sessions.data.items.length ? (
            <Table
              class="sessions stack"
              rows={sessions.data.items}
              rowKey={(s) => s.id}
              columns={[
                { key: 'name', label: 'Name', rowHeader: true, cell: (s) => s.name },
                { key: 'role', label: 'Role', cell: (s) => <span class={`badge role-${s.role}`}>{s.role}</span> },
                { key: 'from', label: 'From', cell: (s) => s.source ?? '—' },
                { key: 'created', label: 'Signed in', cell: (s) => <Time iso={s.createdAt} /> },
                { key: 'expires', label: 'Expires', cell: (s) => <Time iso={s.expiresAt} /> },
                {
                  key: 'actions',
                  label: 'Actions',
                  hiddenLabel: true,
                  cell: (s) => (
                    <button type="button" class="danger" onClick={() => setPending({ kind: 'end', session: s })}>
                      End<span class="visually-hidden"> the session of {s.name}</span>
                    </button>
                  ),
                },
              ]}
            />
          ) : (
            <p>No live sessions.</p>
          )
        ) : (
          <p aria-busy="true">Loading…</p>
        )}
        <p class="hint">
          From the gateway's host: <code>npx wott operator sessions</code> and <code>npx wott operator logout ID</code>.
        </p>
      </Section>
      <Confirm
        open={pending !== undefined}
        title={pending?.kind === 'revoke' ? `Revoke the certificate of ${pending.operator.name}?` : pending?.kind === 'end' ? 'End this session?' : ''}
        message={
          pending?.kind === 'revoke'
            ? `The ${pending.operator.role} certificate of ${pending.operator.name} (serial ${pending.operator.serial}) stops working at once: the API refuses it and the CRL lists it. This cannot be undone; ${pending.operator.name} needs a new certificate. Browser sessions are separate: end them below.`
            : pending?.kind === 'end'
              ? `The session of ${pending.session.name} (${pending.session.role}) stops working at once. Ending your own signs you out.`
              : ''
        }
        confirmLabel={pending?.kind === 'revoke' ? `Revoke ${pending.operator.name}'s certificate` : 'End session'}
        danger
        onConfirm={() => (pending?.kind === 'revoke' ? revoke(pending.operator) : pending?.kind === 'end' ? end(pending.session) : undefined)}
        onCancel={() => setPending(undefined)}
      >
        {pending?.kind === 'revoke' ? (
          <label>
            Reason (on the CRL)
            <select name="reason" value={reason} onChange={(e) => setReason(e.currentTarget.value as (typeof REVOCATION_REASONS)[number])}>
              {REVOCATION_REASONS.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
        ) : null}
      </Confirm>
    </main>
  );
}
