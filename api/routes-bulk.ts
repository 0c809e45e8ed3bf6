/**
 * `POST /api/v1/devices/actions`: one action on many devices (the dashboard's selection). Each device goes through
 * the same FleetOperations call as its own route would (so each is audited on its own, with the caller), one after
 * another; a refusal for one device (404, 409) is reported in its result and the others go on. The request is
 * refused as a whole only for the caller (role, CSRF) or a malformed body (at most BULK_MAX_DEVICES ids).
 */
import { BULK_MAX_DEVICES, bulkActionBodySchema, bulkActionResultSchema, type BulkActionBody, type BulkActionResult, type BulkResultItem } from '../protocol/index.js';
import { FleetRefusal } from './fleet-port.js';
import type { RouteContext, RouteSpec } from './routes.js';

export const BULK_ROUTES: RouteSpec[] = [
  {
    method: 'POST',
    path: '/devices/actions',
    summary: `Quarantine, release, tag or untag several devices (at most ${BULK_MAX_DEVICES} ids a request): one result per device, each audited on its own; a refusal for one device does not stop the others`,
    access: { role: 'operator' },
    audited: true,
    body: bulkActionBodySchema,
    response: bulkActionResultSchema,
    async handler({ body, caller, deps }: RouteContext<unknown, unknown, BulkActionBody>): Promise<BulkActionResult> {
      const results: BulkResultItem[] = [];
      for (const id of body.ids) {
        try {
          const device =
            body.action === 'quarantine' || body.action === 'release'
              ? await deps.fleet[body.action](id, caller.identity)
              : await deps.fleet.changeTags(id, body.action === 'tag' ? { add: body.tags! } : { remove: body.tags! }, caller.identity);
          results.push({ id, ok: true, device: { id: device.id, state: device.state, tags: device.tags } });
        } catch (err) {
          // Another device's refusal is no reason to stop; an unexpected error is reported without its message.
          if (err instanceof FleetRefusal) results.push({ id, ok: false, status: err.status, message: err.message });
          else results.push({ id, ok: false, status: 500, message: 'internal error' });
        }
      }
      const succeeded = results.filter((r) => r.ok).length;
      return { action: body.action, succeeded, failed: results.length - succeeded, results };
    },
  },
];
