/**
 * Credentials (issue 17): the list for every role (metadata only; exposures flagged "rotate it"), and for admins a
 * form to set or rotate one and a confirmed delete. Values are write-only: the value field is a password field,
 * emptied after each submit, and nothing the page receives holds a value.
 */
import { useState } from 'preact/hooks';
import type { Whoami } from '../../../protocol/api.js';
import type { CredentialInfoReply } from '../../../protocol/credentials.js';
import { call } from '../api.js';
import { Table } from '../table.js';
import { can, Confirm, Failure, Section, Time, useLoad, useTitle } from '../ui.js';

/** Repeated from protocol/credentials.ts (importing it would bundle zod into the page). */
const NAME_PATTERN = '[a-z0-9][a-z0-9._\\-]{0,63}';

type Mode = { kind: 'set' } | { kind: 'rotate'; name: string };

export function CredentialsPage({ who }: { who: Whoami }) {
  useTitle('Credentials');
  const admin = can(who.role, 'admin');
  const list = useLoad(() => call<{ items: CredentialInfoReply[] }>('GET', '/credentials'), 'credentials');
  const [mode, setMode] = useState<Mode>({ kind: 'set' });
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [tags, setTags] = useState('');
  const [minScore, setMinScore] = useState('0.8');
  const [linuxUser, setLinuxUser] = useState('');
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<CredentialInfoReply>();
  const [result, setResult] = useState<{ ok: boolean; text: string }>();

  const exposed = list.data?.items.filter((c) => c.rotate) ?? [];

  const submit = (e: Event) => {
    e.preventDefault();
    const sent = value;
    // The value leaves the page's state at once: it is never shown back, also not after a refusal.
    setValue('');
    setBusy(true);
    setResult(undefined);
    const request =
      mode.kind === 'rotate'
        ? call<CredentialInfoReply>('POST', `/credentials/${encodeURIComponent(mode.name)}/rotate`, { value: sent })
        : call<CredentialInfoReply>('PUT', `/credentials/${encodeURIComponent(name)}`, {
            value: sent,
            tags: tags.split(/[\s,]+/).filter(Boolean),
            minScore: Number(minScore),
            ...(linuxUser ? { linuxUser } : {}),
          });
    request
      .then(
        (c) => {
          setResult({ ok: true, text: `${mode.kind === 'rotate' ? 'Rotated' : 'Saved'} ${c.name}: version ${c.version}.` });
          setMode({ kind: 'set' });
          list.reload();
        },
        (error: Error) => setResult({ ok: false, text: `Not saved: ${error.message}` }),
      )
      .finally(() => setBusy(false));
  };

  const remove = (c: CredentialInfoReply) => {
    setDeleting(undefined);
    call('DELETE', `/credentials/${encodeURIComponent(c.name)}`).then(
      () => {
        setResult({ ok: true, text: `Deleted ${c.name}.` });
        list.reload();
      },
      (error: Error) => setResult({ ok: false, text: `Not deleted: ${error.message}` }),
    );
  };

  return (
    <main id="main">
      <h1>Credentials</h1>
      <Section title="Credentials" source="GET /api/v1/credentials">
        {list.error ? <Failure error={list.error} /> : null}
        {result ? (
          <p role="status" class={result.ok ? 'ok' : 'error'}>
            {result.text}
          </p>
        ) : null}
        {exposed.length ? (
          <p class="warning-box" id="exposed-summary">
            <span aria-hidden="true">⚠ </span>
            Exposed — rotate {exposed.map((c) => c.name).join(', ')}: {exposed.length === 1 ? 'it was' : 'they were'} held by a device that lost trust
            since the last rotation.
          </p>
        ) : null}
        {list.data ? (
          list.data.items.length ? (
            <Table
              class="credentials stack"
              rows={list.data.items}
              rowKey={(c) => c.name}
              rowAttrs={(c) => ({ 'data-credential': c.name, class: c.rotate ? 'exposed' : undefined })}
              columns={[
                { key: 'name', label: 'Name', rowHeader: true, cell: (c) => c.name },
                { key: 'version', label: 'Version', cell: (c) => String(c.version) },
                { key: 'tags', label: 'Tags', cell: (c) => c.tags.join(', ') },
                { key: 'minScore', label: 'Min score', cell: (c) => c.minScore.toFixed(2) },
                { key: 'user', label: 'Linux user', cell: (c) => c.linuxUser ?? '—' },
                { key: 'expires', label: 'Expires', cell: (c) => (c.expiresAt ? <Time iso={c.expiresAt} /> : 'never') },
                { key: 'held', label: 'Held by', cell: (c) => (c.heldBy.length ? c.heldBy.map((h) => h.device).join(', ') : '—') },
                {
                  key: 'exposed',
                  label: 'Exposure',
                  class: 'col-exposure',
                  cell: (c) =>
                    c.rotate ? (
                      <strong class="exposure-warning">
                        <span aria-hidden="true">⚠ </span>Exposed to {c.exposedTo.map((e) => e.device).join(', ')} — rotate it
                      </strong>
                    ) : (
                      '—'
                    ),
                },
                ...(admin
                  ? [
                      {
                        key: 'actions',
                        label: 'Actions',
                        hiddenLabel: true,
                        cell: (c: CredentialInfoReply) => (
                          <span class="buttons">
                            <button type="button" onClick={() => (setMode({ kind: 'rotate', name: c.name }), setResult(undefined))}>
                              Rotate<span class="visually-hidden"> {c.name}</span>
                            </button>
                            <button type="button" class="danger" onClick={() => setDeleting(c)}>
                              Delete<span class="visually-hidden"> {c.name}</span>
                            </button>
                          </span>
                        ),
                      },
                    ]
                  : []),
              ]}
            />
          ) : (
            <p>No credentials.</p>
          )
        ) : (
          <p aria-busy="true">Loading…</p>
        )}
      </Section>
      {admin ? (
        <Section title={mode.kind === 'rotate' ? `Rotate ${mode.name}` : 'Set a credential'} source={mode.kind === 'rotate' ? 'POST /api/v1/credentials/{name}/rotate' : 'PUT /api/v1/credentials/{name}'}>
          <form class="credential" onSubmit={submit}>
            {mode.kind === 'set' ? (
              <>
                <label>
                  Name
                  <input name="name" required pattern={NAME_PATTERN} maxLength={64} value={name} autoComplete="off" spellcheck={false} onInput={(e) => setName(e.currentTarget.value)} />
                </label>
                <label>
                  Tags (devices must hold every one)
                  <input name="tags" required value={tags} autoComplete="off" spellcheck={false} onInput={(e) => setTags(e.currentTarget.value)} />
                </label>
                <label>
                  Minimum score
                  <input name="minScore" type="number" required min="0" max="1" step="0.01" value={minScore} onInput={(e) => setMinScore(e.currentTarget.value)} />
                </label>
                <label>
                  Linux user (optional)
                  <input name="linuxUser" pattern="[a-z_][a-z0-9_\-]{0,31}" value={linuxUser} autoComplete="off" spellcheck={false} onInput={(e) => setLinuxUser(e.currentTarget.value)} />
                </label>
              </>
            ) : null}
            <label>
              Value (write-only: never shown again)
              <input name="value" type="password" required autoComplete="new-password" maxLength={65536} value={value} onInput={(e) => setValue(e.currentTarget.value)} />
            </label>
            <div class="buttons">
              {mode.kind === 'rotate' ? (
                <button type="button" onClick={() => (setMode({ kind: 'set' }), setValue(''))}>
                  Cancel
                </button>
              ) : null}
              <button type="submit" class="primary" disabled={busy}>
                {mode.kind === 'rotate' ? 'Rotate' : 'Save'}
              </button>
            </div>
          </form>
          <p class="hint">
            From the gateway's host: <code>npx wott credential set NAME --value-stdin --tags a,b --min-score 0.8</code>.
          </p>
        </Section>
      ) : (
        <p class="hint">Setting, rotating and deleting credentials needs the admin role; this session is {who.role}.</p>
      )}
      <Confirm
        open={deleting !== undefined}
        title={deleting ? `Delete the credential ${deleting.name}?` : 'Delete?'}
        message={deleting ? `Devices holding ${deleting.name} are told to delete their copy at once.` : ''}
        confirmLabel={deleting ? `Delete ${deleting.name}` : 'Delete'}
        danger
        onConfirm={() => deleting && remove(deleting)}
        onCancel={() => setDeleting(undefined)}
      />
    </main>
  );
}
