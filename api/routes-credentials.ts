/**
 * Credentials (issue 17) through the API: the same CredentialService the CLI uses, acting as the caller (so its
 * audit entries name them). Values are write-only: they go in with PUT and rotate, and no reply carries one —
 * replies are built field by field from the metadata. Reading metadata is for viewers; setting, rotating and
 * removing are for admins only, since whoever sets a credential decides which devices receive a secret.
 */
import {
  credentialInfoSchema,
  credentialListSchema,
  credentialParamsSchema,
  credentialRemovedSchema,
  credentialRotateBodySchema,
  credentialSetBodySchema,
  type CredentialInfoReply,
  type CredentialSetBody,
} from '../protocol/index.js';
import { FleetRefusal } from './fleet-port.js';
import type { ApiDeps, RouteContext, RouteSpec } from './routes.js';

/** What a credential is, as the service tells it (everything but the value). */
export interface CredentialView {
  name: string;
  version: number;
  tags: string[];
  minScore: number;
  linuxUser: string | null;
  ttlMs: number | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  size: number;
  exposedTo: { device: string; version: number; reason: string; time: string }[];
}

/** What the credential routes need: CredentialService fits. `as(actor)` audits as that caller. */
export interface CredentialOperations {
  as(actor: string): CredentialOperations;
  set(name: string, value: Buffer, terms: { tags: string[]; minScore: number; linuxUser?: string | undefined; ttlMs?: number | undefined }): Promise<CredentialView>;
  rotate(name: string, value: Buffer): Promise<CredentialView>;
  remove(name: string): Promise<void>;
  list(): Promise<CredentialView[]>;
  show(name: string): Promise<CredentialView | undefined>;
  holders(name?: string): Promise<{ device: string; name: string; version: number; time: string }[]>;
}

type Holder = Awaited<ReturnType<CredentialOperations['holders']>>[number];
type Handler = (ctx: RouteContext<any, any, any>) => Promise<unknown>;

function service(deps: ApiDeps): CredentialOperations {
  if (!deps.credentials) throw new FleetRefusal(404, 'credentials are not managed by this gateway');
  return deps.credentials;
}

/** The service's refusals (status 400, 404, 413) are the client's: shown with their status and message. */
async function refusing<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    if (err instanceof Error && err.name === 'CredentialError' && typeof status === 'number' && status >= 400 && status < 500) {
      throw Object.assign(new Error(err.message), { statusCode: status });
    }
    throw err;
  }
}

/** Field by field, so nothing the service might add (a value, a sealed blob) can leak into a reply. */
function reply(c: CredentialView, holders: Holder[]): CredentialInfoReply {
  return {
    name: c.name,
    version: c.version,
    tags: [...c.tags],
    minScore: c.minScore,
    linuxUser: c.linuxUser,
    ttlSeconds: c.ttlMs === null ? null : Math.round(c.ttlMs / 1000),
    expiresAt: c.expiresAt,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    size: c.size,
    heldBy: holders.filter((h) => h.name === c.name).map((h) => ({ device: h.device, version: h.version, time: h.time })),
    exposedTo: c.exposedTo.map((e) => ({ device: e.device, version: e.version, reason: e.reason, time: e.time })),
    rotate: c.exposedTo.length > 0,
  };
}

const admin = { role: 'admin' } as const;

export const CREDENTIAL_ROUTES: RouteSpec[] = [
  {
    method: 'GET',
    path: '/credentials',
    summary: 'Credentials with their terms (tags, minimum score, Linux user, expiry), the devices holding each, and those exposed to a device that lost trust ("rotate it"); never a value',
    access: { role: 'viewer' },
    response: credentialListSchema,
    handler: (async ({ deps }: RouteContext<unknown, unknown, unknown>) => {
      const credentials = service(deps);
      const [list, holders] = await Promise.all([credentials.list(), credentials.holders()]);
      return { items: list.map((c) => reply(c, holders)) };
    }) as Handler,
  },
  {
    method: 'GET',
    path: '/credentials/{name}',
    summary: 'One credential: its terms, version, the devices holding it and its exposures; never its value',
    access: { role: 'viewer' },
    params: credentialParamsSchema,
    response: credentialInfoSchema,
    handler: (async ({ params, deps }: RouteContext<{ name: string }, unknown, unknown>) => {
      const credentials = service(deps);
      const c = await refusing(() => credentials.show(params.name));
      if (!c) throw new FleetRefusal(404, `no credential "${params.name}"`);
      return reply(c, await credentials.holders(params.name));
    }) as Handler,
  },
  {
    method: 'PUT',
    path: '/credentials/{name}',
    summary: 'Create a credential, or replace its value and terms as its next version (admin: it decides which devices receive a secret); the value is never returned',
    access: admin,
    audited: true,
    params: credentialParamsSchema,
    body: credentialSetBodySchema,
    response: credentialInfoSchema,
    handler: (async ({ params, body, caller, deps }: RouteContext<{ name: string }, unknown, CredentialSetBody>) => {
      const credentials = service(deps).as(caller.identity);
      const c = await refusing(() =>
        credentials.set(params.name, Buffer.from(body.value, 'utf8'), { tags: body.tags, minScore: body.minScore, linuxUser: body.linuxUser, ttlMs: body.ttlSeconds === undefined ? undefined : body.ttlSeconds * 1000 }),
      );
      return reply(c, await credentials.holders(params.name));
    }) as Handler,
  },
  {
    method: 'POST',
    path: '/credentials/{name}/rotate',
    summary: 'A new value under the same terms: every device still entitled receives the new version, and the "rotate it" flags clear',
    access: admin,
    audited: true,
    params: credentialParamsSchema,
    body: credentialRotateBodySchema,
    response: credentialInfoSchema,
    handler: (async ({ params, body, caller, deps }: RouteContext<{ name: string }, unknown, { value: string }>) => {
      const credentials = service(deps).as(caller.identity);
      const c = await refusing(() => credentials.rotate(params.name, Buffer.from(body.value, 'utf8')));
      return reply(c, await credentials.holders(params.name));
    }) as Handler,
  },
  {
    method: 'DELETE',
    path: '/credentials/{name}',
    summary: 'Delete a credential: the devices holding it are told to delete their copy',
    access: admin,
    audited: true,
    params: credentialParamsSchema,
    response: credentialRemovedSchema,
    handler: (async ({ params, caller, deps }: RouteContext<{ name: string }, unknown, unknown>) => {
      await refusing(() => service(deps).as(caller.identity).remove(params.name));
      return { name: params.name, removed: true as const };
    }) as Handler,
  },
];
