/**
 * The OpenAPI 3.1 document, generated from the route table and its zod schemas (the same ones that validate), so
 * the document cannot describe an API other than the one served. Committed as api/openapi.json
 * (`npm run openapi` rewrites it; test/api/openapi.test.ts fails when it drifts).
 */
import { z } from 'zod';
import { API_MAX_BODY_BYTES, API_PREFIX, apiErrorSchema, CSRF_HEADER, SESSION_COOKIE, type SseEventSpec } from '../protocol/index.js';
import { ROUTES } from './routes.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): Json[] {
  if (!schema) return [];
  const js = jsonSchema(schema, 'input') as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    ...(typeof s.description === 'string' ? { description: s.description } : {}),
    schema: s,
  }));
}

const ERROR = { $ref: '#/components/schemas/ApiError' };
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ERROR } } });

/**
 * A Server-Sent Events body. OpenAPI 3.1 can only call it a string (3.2's itemSchema is not 3.1), so each event
 * (its meaning, whether it carries an id, the JSON schema of its data line) is listed under `x-wott-events`.
 */
function eventStream(events: Record<string, SseEventSpec>): Json {
  const entries = Object.entries(events);
  return {
    schema: {
      type: 'string',
      description:
        'text/event-stream (https://html.spec.whatwg.org/multipage/server-sent-events.html): `event:` is one of ' +
        `${entries.map(([name]) => name).join(', ')}; \`data:\` is one line of JSON; lines starting with \`:\` are heartbeats.`,
    },
    'x-wott-events': Object.fromEntries(entries.map(([name, e]) => [name, { description: e.description, id: e.id, data: jsonSchema(e.data, 'output') }])),
  };
}

export function buildOpenApi(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of ROUTES) {
    const mutating = route.method !== 'GET';
    const ok: Json = route.events ? { 'text/event-stream': eventStream(route.events) } : { 'application/json': { schema: jsonSchema(route.response, 'output') } };
    if (route.csv) ok['text/csv'] = { schema: { type: 'string' } };
    for (const [type, description] of Object.entries(route.downloads ?? {})) ok[type] = { schema: { type: 'string', format: 'binary', description: `${description} (Content-Disposition: attachment)` } };
    const roleText = `Role: ${route.access.role} or above${route.access.services ? ', or a service certificate' : ''}.`;
    (paths[API_PREFIX + route.path] ??= {})[route.method.toLowerCase()] = {
      summary: route.summary,
      description: `${roleText}${mutating ? ` Browser sessions send the ${CSRF_HEADER} header.` : ''}${route.audited ? ' Recorded in the audit log with the caller.' : ''}`,
      operationId: `${route.method.toLowerCase()}${route.path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      'x-wott-role': route.access.role,
      ...(route.access.services ? { 'x-wott-services': true } : {}),
      parameters: [
        ...parameters(route.params, 'path'),
        ...parameters(route.query, 'query'),
        ...(route.events
          ? [{ name: 'Last-Event-ID', in: 'header', required: false, description: 'resume after this event id ({feed}-{boot}-{scores}): what was missed is sent first', schema: { type: 'string' } }]
          : []),
      ],
      ...(route.body
        ? { requestBody: { required: !route.body.safeParse(undefined).success, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } }
        : {}),
      responses: {
        '200': route.events
          ? { description: 'an event stream, open until the client leaves, falls too far behind, or its credential ends (session ended or expired, certificate revoked or expired)', content: ok }
          : { description: 'OK', content: ok },
        '400': errorResponse('invalid request (malformed JSON, unknown field, bad value or cursor)'),
        '401': errorResponse('no usable credentials'),
        '403': errorResponse('credentials of the wrong kind or role, or a missing CSRF token'),
        ...(route.params ? { '404': errorResponse('no such device or session') } : {}),
        ...(mutating ? { '409': errorResponse('the device is in a state this action does not apply to'), '413': errorResponse(`body over ${API_MAX_BODY_BYTES} bytes`) } : {}),
        '429': errorResponse('too many refused requests from this address or identity'),
        ...(route.events ? { '503': errorResponse('too many streams open: retry after Retry-After seconds') } : {}),
        ...(route.downloads ? { '503': errorResponse('too many report requests waiting (retry after Retry-After seconds), or no chromium on the gateway for PDF') } : {}),
      },
      security: [{ mutualTLS: [] }, { session: [] }],
    };
  }
  paths[`${API_PREFIX}/login/{secret}`] = {
    get: {
      summary: 'The page a one-time login link (`wott operator login`) opens: a Sign in button; the link is not used yet',
      operationId: 'getLoginBySecret',
      security: [],
      parameters: [{ name: 'secret', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { '200': { description: 'an HTML page with a form that POSTs to the same URL' }, '401': errorResponse('not a login link') },
    },
    post: {
      summary: 'Redeem the one-time login link: sets the session cookie and redirects to whoami',
      operationId: 'postLoginBySecret',
      security: [],
      parameters: [{ name: 'secret', in: 'path', required: true, schema: { type: 'string' } }],
      responses: {
        '303': { description: `signed in: Set-Cookie ${SESSION_COOKIE} (HttpOnly, Secure, SameSite=Strict)` },
        '401': errorResponse('link unknown, used or expired'),
        '403': errorResponse('posted from another site (Sec-Fetch-Site)'),
        '429': errorResponse('too many failed logins from this address'),
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'wott HTTPS API',
      version: '1',
      description: `Operators manage the fleet. Request bodies are JSON, at most ${API_MAX_BODY_BYTES} bytes; unknown fields are refused. Errors are {statusCode, error, message}.`,
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: { ApiError: jsonSchema(apiErrorSchema, 'output') },
      securitySchemes: {
        mutualTLS: { type: 'mutualTLS', description: 'an operator certificate from this CA (wott operator create), or a service certificate' },
        session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: `browser session from a login link; POST, PUT and DELETE also need the ${CSRF_HEADER} header` },
      },
    },
  };
}

/** The document as committed: stable key order from the route table, two-space indent, trailing newline. */
export function openApiText(): string {
  return JSON.stringify(buildOpenApi(), null, 2) + '\n';
}
