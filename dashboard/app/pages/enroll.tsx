/**
 * Enroll: an operator makes a one-time token for a device id (POST /tokens) and copies the ready commands the API
 * returns: the agent command, or curl + openssl with the root fingerprint pinned. The token is shown once.
 */
import { useState } from 'preact/hooks';
import type { DevicePage, DeviceSummary, TokenResult, Whoami } from '../../../protocol/api.js';
import { call } from '../api.js';
import { Table } from '../table.js';
import { can, Confirm, CopyBlock, Failure, Section, Time, useLoad, useTitle } from '../ui.js';
import { QrCode } from '../qr.js';

/**
 * Devices that enrolled without a token (claim mode) wait here, unclaimed (score ceiling 0), until an operator
 * claims them (POST /devices/{id}/claim) or rejects them (POST /devices/{id}/reject: the certificate claim mode
 * gave it is revoked and the device is marked revoked, its id kept so that only a token can enroll it again). The
 * list is the device list filtered by state. One confirmation dialog for both, naming the device.
 */
type QueueAction = 'claim' | 'reject';
const QUEUE_ACTIONS: Record<QueueAction, { label: string; done: (id: string) => string; explain: (id: string) => string; danger: boolean }> = {
  claim: {
    label: 'Claim',
    done: (id) => `Claimed ${id}: it is active now.`,
    explain: (id) => `Claim device ${id}: it becomes active and its score is no longer capped at 0. Claim only a device you recognise; reject it otherwise.`,
    danger: false,
  },
  reject: {
    label: 'Reject',
    done: (id) => `Rejected ${id}: its certificate is revoked and it left the queue.`,
    explain: (id) =>
      `Reject device ${id}: its certificate is revoked at once (its connections are closed) and it leaves the queue, marked revoked. The id stays taken: the real ${id} can still enroll with a token.`,
    danger: true,
  },
};

function ClaimQueue() {
  const queue = useLoad(() => call<DevicePage>('GET', '/devices?state=unclaimed&sort=createdAt&limit=100'), 'queue');
  const [pending, setPending] = useState<{ action: QueueAction; device: DeviceSummary }>();
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const act = (action: QueueAction, d: DeviceSummary) => {
    setPending(undefined);
    call('POST', `/devices/${encodeURIComponent(d.id)}/${action}`).then(
      () => {
        setResult({ ok: true, text: QUEUE_ACTIONS[action].done(d.id) });
        queue.reload();
      },
      (error: Error) => setResult({ ok: false, text: `${QUEUE_ACTIONS[action].label} of ${d.id} refused: ${error.message}` }),
    );
  };
  const items = queue.data?.items ?? [];
  const spec = pending ? QUEUE_ACTIONS[pending.action] : undefined;
  return (
    <Section title="Claim queue" source="GET /api/v1/devices?state=unclaimed">
      {queue.error ? <Failure error={queue.error} /> : null}
      {result ? (
        <p role="status" class={result.ok ? 'ok' : 'error'}>
          {result.text}
        </p>
      ) : null}
      {queue.data && items.length === 0 ? <p>No device is waiting to be claimed.</p> : null}
      {items.length ? (
        <Table
          class="claims"
          rows={items}
          rowKey={(d) => d.id}
          columns={[
            { key: 'device', label: 'Device', rowHeader: true, cell: (d) => <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a> },
            { key: 'enrolled', label: 'Enrolled', cell: (d) => <Time iso={d.createdAt} /> },
            {
              key: 'actions',
              label: 'Actions',
              hiddenLabel: true,
              cell: (d) => (
                <span class="row-actions">
                  {(['claim', 'reject'] as const).map((action) => (
                    <button key={action} type="button" class={QUEUE_ACTIONS[action].danger ? 'danger' : 'primary'} data-action={action} onClick={() => setPending({ action, device: d })}>
                      {QUEUE_ACTIONS[action].label}
                      <span class="visually-hidden"> {d.id}</span>
                    </button>
                  ))}
                </span>
              ),
            },
          ]}
        />
      ) : null}
      {queue.data?.nextCursor ? (
        <p>
          <a href="/devices?state=unclaimed&sort=createdAt">All unclaimed devices</a>
        </p>
      ) : null}
      <Confirm
        open={pending !== undefined}
        title={pending && spec ? `${spec.label} ${pending.device.id}?` : ''}
        message={pending && spec ? spec.explain(pending.device.id) : ''}
        confirmLabel={pending && spec ? `${spec.label} ${pending.device.id}` : ''}
        danger={spec?.danger ?? false}
        onConfirm={() => pending && act(pending.action, pending.device)}
        onCancel={() => setPending(undefined)}
      />
    </Section>
  );
}

const TTLS = [
  { seconds: 3600, label: '1 hour' },
  { seconds: 86_400, label: '24 hours' },
  { seconds: 7 * 86_400, label: '7 days' },
];
const DEVICE_ID = '^[a-z0-9][a-z0-9._\\-]{0,62}$';

export function EnrollPage({ who }: { who: Whoami }) {
  useTitle('Enroll a device');
  const [device, setDevice] = useState('');
  const [ttl, setTtl] = useState(86_400);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [token, setToken] = useState<TokenResult>();
  if (!can(who.role, 'operator')) {
    return (
      <main id="main">
        <h1>Enroll a device</h1>
        <p>Creating enrollment tokens needs the operator role; this session is {who.role}.</p>
      </main>
    );
  }
  return (
    <main id="main">
      <h1>Enroll a device</h1>
      <Section title="One-time enrollment token" source="POST /api/v1/tokens">
        <form
          class="enroll"
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(undefined);
            call<TokenResult>('POST', '/tokens', { device, ttlSeconds: ttl })
              .then(setToken, setError)
              .finally(() => setBusy(false));
          }}
        >
          <label>
            Device id
            <input name="device" required pattern={DEVICE_ID} maxLength={63} value={device} autoComplete="off" spellcheck={false} aria-describedby="device-rule" onInput={(e) => setDevice(e.currentTarget.value)} />
          </label>
          <span id="device-rule" class="hint">
            1–63 of a–z, 0–9, “.”, “_”, “-”, starting with a letter or digit
          </span>
          <label>
            Valid for
            <select name="ttl" value={String(ttl)} onChange={(e) => setTtl(Number(e.currentTarget.value))}>
              {TTLS.map((t) => (
                <option key={t.seconds} value={String(t.seconds)}>
                  {t.label}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" class="primary" disabled={busy}>
            Create token
          </button>
        </form>
        {error ? <Failure error={error} /> : null}
      </Section>
      {token ? (
        <Section title={`Enroll ${token.device}`} source="POST /api/v1/tokens">
          <p role="status">
            Token for <strong>{token.device}</strong>, valid until <Time iso={token.expiresAt} />. It is shown once: copy a command now.
          </p>
          <dl class="facts">
            <dt>Server</dt>
            <dd>
              <code>{token.server}</code>
            </dd>
            <dt>Root CA SHA-256 (pinned by the commands)</dt>
            <dd>
              <code class="fingerprint-full">{token.rootFingerprint}</code>
            </dd>
          </dl>
          <CopyBlock label="With the wott agent" text={token.agentCommand} />
          <QrCode text={token.agentCommand} label={`The agent command for ${token.device}, as a QR code to scan at the device`} />
          <CopyBlock label="With curl and openssl" text={token.curlCommands} />
        </Section>
      ) : null}
      <ClaimQueue />
    </main>
  );
}
