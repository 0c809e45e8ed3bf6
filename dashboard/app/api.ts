/**
 * The dashboard's only way to the fleet: the HTTPS API under /api/v1, same origin, with the session cookie. Mutating
 * calls send the session's CSRF token (from GET /whoami). A 401 anywhere means the session is gone: the shell then
 * shows how to sign in again.
 */
import type { Whoami } from '../../protocol/api.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;
let onSignedOut: () => void = () => {};

export function setSession(who: Whoami | undefined, signedOut?: () => void): void {
  csrfToken = who?.csrfToken;
  if (signedOut) onSignedOut = signedOut;
}

export async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const message = (json as { message?: string } | undefined)?.message ?? `${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== '/whoami') onSignedOut();
    throw new ApiError(res.status, message);
  }
  return json as T;
}

/** Query string from the defined, non-empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * A download from the API (GET, with the session cookie): fetched here rather than by a plain link so that a
 * refusal (503 while the gateway is busy, no chromium for PDF) is shown with its reason instead of a failed
 * download. The file is handed to the browser under the name the server gave (Content-Disposition).
 */
export async function download(path: string): Promise<string> {
  const res = await fetch(`/api/v1${path}`, { credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = ((await res.json()) as { message?: string }).message ?? message;
    } catch {
      // not JSON: the status says enough
    }
    if (res.status === 401) onSignedOut();
    throw new ApiError(res.status, message);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') ?? '')?.[1] ?? 'download';
  const url = URL.createObjectURL(await res.blob());
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    // Revoked after the click has handed the file over.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
  return name;
}
