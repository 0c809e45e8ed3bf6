/** Browser sessions (admins): GET /sessions lists the live ones, DELETE /sessions/{id} ends one at once. */
import { useState } from 'preact/hooks';
import type { Whoami } from '../../../protocol/api.js';
import { call } from '../api.js';
import { Table } from '../table.js';
import { can, Confirm, Failure, Section, Time, useLoad, useTitle } from '../ui.js';

type SessionInfo = { id: string; role: string; name: string; createdAt: string; expiresAt: string; source: string | null };

export function SessionsPage({ who }: { who: Whoami }) {
  useTitle('Sessions');
  const admin = can(who.role, 'admin');
  const list = useLoad(() => (admin ? call<{ items: SessionInfo[] }>('GET', '/sessions') : Promise.resolve({ items: [] })), 'sessions');
  const [ending, setEnding] = useState<SessionInfo>();
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  if (!admin) {
    return (
      <main id="main">
        <h1>Sessions</h1>
        <p>Listing and ending sessions needs the admin role; this session is {who.role}.</p>
      </main>
    );
  }
  const end = (s: SessionInfo) => {
    setEnding(undefined);
    call('DELETE', `/sessions/${encodeURIComponent(s.id)}`).then(
      () => {
        setResult({ ok: true, text: `Ended the session of ${s.name}.` });
        list.reload();
      },
      (error: Error) => setResult({ ok: false, text: `Not ended: ${error.message}` }),
    );
  };
  return (
    <main id="main">
      <h1>Sessions</h1>
      <Section title="Live browser sessions" source="GET /api/v1/sessions">
        {list.error ? <Failure error={list.error} /> : null}
        {result ? (
          <p role="status" class={result.ok ? 'ok' : 'error'}>
            {result.text}
          </p>
        ) : null}
        {list.data ? (
          list.data.items.length ? (
            <Table
              rows={list.data.items}
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
                    <button type="button" class="danger" onClick={() => setEnding(s)}>
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
        open={ending !== undefined}
        title="End this session?"
        message={ending ? `The session of ${ending.name} (${ending.role}) stops working at once. Ending your own signs you out.` : ''}
        confirmLabel="End session"
        danger
        onConfirm={() => ending && end(ending)}
        onCancel={() => setEnding(undefined)}
      />
    </main>
  );
}
