/**
 * The task service's HTTP shape through Fastify's inject(): what a client is
 * told about a bad request, how failures map to statuses, and the OpenAPI
 * document. The in-memory TaskStore here stands in for the state store only to
 * shape responses; storage behaviour is tested on real daprd (test/dapr).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import taskApp from '../../src/service/app.ts';
import notificationApp, { RECEIVED_WINDOW } from '../../src/service/notification-app.ts';
import { ServiceError } from '../../src/service/errors.ts';
import type { DueReminders, EventPublisher, Sidecar, StoredTask, TaskStore } from '../../src/service/ports.ts';
import type { ListQuery, Task, TaskPage } from '../../src/service/schemas/task.ts';
import { LiveSettings } from '../../src/service/settings.ts';
import { StartupGate } from '../../src/service/startup.ts';

/** Tasks in a Map, for response shapes only. `failWith` makes every call throw that error. */
class ShapeOnlyStore implements TaskStore {
  readonly tasks = new Map<string, StoredTask>();
  failWith: ServiceError | undefined;
  private version = 0;

  private check(): void {
    if (this.failWith) throw this.failWith;
  }
  create(task: Task): Promise<void> {
    this.check();
    this.tasks.set(task.id, { task, etag: String(++this.version) });
    return Promise.resolve();
  }
  get(id: string): Promise<StoredTask | undefined> {
    this.check();
    return Promise.resolve(this.tasks.get(id));
  }
  replace(task: Task, etag: string): Promise<number> {
    this.check();
    const current = this.tasks.get(task.id);
    if (current?.etag !== etag) throw new ServiceError('etag_mismatch', 'changed', { current: current?.task });
    this.tasks.set(task.id, { task, etag: String(++this.version) });
    return Promise.resolve(this.version);
  }
  delete(id: string): Promise<Task | undefined> {
    this.check();
    const current = this.tasks.get(id);
    this.tasks.delete(id);
    return Promise.resolve(current?.task);
  }
  readonly marks = new Set<string>();
  marked(mark: string): Promise<boolean> {
    this.check();
    return Promise.resolve(this.marks.has(mark));
  }
  mark(mark: string): Promise<void> {
    this.check();
    this.marks.add(mark);
    return Promise.resolve();
  }
  list(query: ListQuery): Promise<TaskPage> {
    this.check();
    return Promise.resolve({
      items: [...this.tasks.values()].map((stored) => stored.task).slice(0, query.limit),
      next_cursor: null,
    });
  }
}

const published: string[] = [];
const events: EventPublisher = {
  publish: (type) => {
    published.push(type);
    return Promise.resolve();
  },
};
const sidecar: Sidecar = { loadedComponents: () => Promise.resolve(['state', 'pubsub']) };
/** Reminders are Dapr jobs, tested on daprd with the scheduler (test/dapr/due-dates.test.ts): nothing here. */
const reminders: DueReminders = {
  schedule: () => Promise.resolve(),
  cancel: () => Promise.resolve(),
};

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
  published.length = 0;
});

async function serviceWith(store: TaskStore, { open = true, token }: { open?: boolean; token?: string } = {}) {
  const gate = new StartupGate();
  if (open) gate.open(token);
  app = Fastify({ logger: false });
  await app.register(taskApp, {
    store,
    events,
    reminders,
    settings: new LiveSettings(),
    notifier: undefined,
    sidecar,
    gate,
    secured: token !== undefined,
    components: ['state', 'pubsub'],
  });
  await app.ready();
  return app;
}

describe('the task API answers bad requests with the field at fault', () => {
  it.each<[string, object, string, RegExp]>([
    ['a missing title', {}, 'title', /title/],
    ['an empty title', { title: '' }, 'title', /title/],
    ['a title over 200 characters', { title: 'x'.repeat(201) }, 'title', /title/],
    ['a priority out of 1-5', { title: 'ok', priority: 9 }, 'priority', /priority/],
    ['an unknown status', { title: 'ok', status: 'done' }, 'status', /status/],
    ['a field the model does not have', { title: 'ok', owner: 'me' }, 'owner', /owner/],
    ['a due date that is not RFC 3339', { title: 'ok', due_at: 'tomorrow' }, 'due_at', /due_at/],
    ['a due date without a time zone', { title: 'ok', due_at: '2030-01-01T10:00:00' }, 'due_at', /due_at/],
    [
      'a due date in the past',
      { title: 'ok', due_at: '2020-01-01T10:00:00Z' },
      'due_at',
      /due_at: must be in the future/,
    ],
  ])('POST /tasks with %s: 400 naming %s', async (_what, body, field, message) => {
    const service = await serviceWith(new ShapeOnlyStore());
    const response = await service.inject({ method: 'POST', url: '/tasks', payload: body });
    expect(response.statusCode).toBe(400);
    const error = response.json<{ code: string; field: string; message: string }>();
    expect(error).toMatchObject({ code: 'validation_failed', field });
    expect(error.message).toMatch(message);
  });

  it('refuses a title or description holding U+0000 (no store keeps it as sent), naming the field', async () => {
    const service = await serviceWith(new ShapeOnlyStore());
    for (const [body, field] of [
      [{ title: 'a\u0000b' }, 'title'],
      [{ title: 'ok', description: '\u0000' }, 'description'],
    ] as const) {
      const response = await service.inject({ method: 'POST', url: '/tasks', payload: body });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ code: 'validation_failed', field });
    }
  });

  it('takes a status in the JSON body or as ?status= (a null or empty body is none), and refuses neither', async () => {
    const store = new ShapeOnlyStore();
    const service = await serviceWith(store);
    const { id } = (await service.inject({ method: 'POST', url: '/tasks', payload: { title: 'a' } })).json<Task>();
    const put = (query: string, headers: Record<string, string>, payload?: string) =>
      service.inject({ method: 'PUT', url: `/tasks/${id}/status${query}`, headers, payload });
    const json = { 'content-type': 'application/json' };
    expect((await put('', json, '{"status":"in_progress"}')).json()).toMatchObject({ status: 'in_progress' });
    expect((await put('?status=completed', {})).json()).toMatchObject({ status: 'completed' });
    expect((await put('?status=pending', json, 'null')).json()).toMatchObject({ status: 'pending' });
    expect((await put('?status=in_progress', { 'content-length': '0' })).json()).toMatchObject({
      status: 'in_progress',
    });
    for (const neither of [await put('', {}), await put('', json, 'null')]) {
      expect(neither.statusCode).toBe(400);
      expect(neither.json()).toMatchObject({ code: 'validation_failed', field: 'status' });
    }
    expect(store.tasks.get(id)?.task.status).toBe('in_progress');
  });

  it('refuses malformed JSON and a bad id, naming the body and the id', async () => {
    const service = await serviceWith(new ShapeOnlyStore());
    const malformed = await service.inject({
      method: 'POST',
      url: '/tasks',
      headers: { 'content-type': 'application/json' },
      payload: '{"title":',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ code: 'validation_failed', field: 'body' });
    const badId = await service.inject({ method: 'GET', url: '/tasks/not-a-uuid' });
    expect(badId.statusCode).toBe(400);
    expect(badId.json()).toMatchObject({ field: 'id' });
  });
});

describe('failures map to statuses a client can act on', () => {
  it('404 for a missing task; 409 with the version that won for a stale If-Match; nothing written', async () => {
    const store = new ShapeOnlyStore();
    const service = await serviceWith(store);
    const created = (await service.inject({ method: 'POST', url: '/tasks', payload: { title: 'a' } })).json<Task>();
    expect(
      (await service.inject({ method: 'GET', url: '/tasks/01a23000-0000-7000-8000-000000000000' })).statusCode,
    ).toBe(404);
    const read = await service.inject({ method: 'GET', url: `/tasks/${created.id}` });
    const etag = read.headers.etag;
    await service.inject({ method: 'PUT', url: `/tasks/${created.id}/status`, payload: { status: 'in_progress' } });
    const stale = await service.inject({
      method: 'PUT',
      url: `/tasks/${created.id}/status`,
      headers: { 'if-match': String(etag) },
      payload: { status: 'completed' },
    });
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ code: 'etag_mismatch', current: { id: created.id, status: 'in_progress' } });
    expect(store.tasks.get(created.id)?.task.status).toBe('in_progress');
    expect(published).toEqual(['task.created']);
  });

  it.each<[string, ServiceError, number]>([
    ['the sidecar is down', new ServiceError('sidecar_unavailable', 'sidecar down'), 503],
    ['the store is down', new ServiceError('store_unavailable', 'store down'), 503],
    ['Dapr answered something unexplained', new ServiceError('dapr_failed', 'odd'), 500],
  ])('%s: %s', async (_what, error, status) => {
    const store = new ShapeOnlyStore();
    store.failWith = error;
    const service = await serviceWith(store);
    const response = await service.inject({ method: 'POST', url: '/tasks', payload: { title: 'a' } });
    expect(response.statusCode).toBe(status);
    expect(response.json()).toMatchObject({ code: error.code });
    expect(response.headers['retry-after']).toBe(status === 503 ? '1' : undefined);
    expect(published).toEqual([]);
  });

  it("tells the client the step and the kind of a store failure, not daprd's words about the store's address", async () => {
    const store = new ShapeOnlyStore();
    const daprd = new Error(
      'failed to connect to `user=postgres database=tasks`: 10.96.87.236:5432 (postgresql.ns.svc)',
    );
    store.failWith = new ServiceError(
      'store_unavailable',
      `state get: daprd answered 500 ERR_STATE_GET ${daprd.message}`,
      { cause: daprd },
    );
    const service = await serviceWith(store);
    const response = await service.inject({ method: 'POST', url: '/tasks', payload: { title: 'a' } });
    expect(response.statusCode).toBe(503);
    const body = response.json<{ code: string; message: string }>();
    expect(body.code).toBe('store_unavailable');
    expect(body.message).toBe(
      "state get: the state store failed or does not answer; retry shortly (details in the service's log)",
    );
    expect(body.message).not.toMatch(/postgres|10\.96|5432/);
  });

  it('503 with Retry-After while starting; 401 without the token when one is set', async () => {
    const starting = await serviceWith(new ShapeOnlyStore(), { open: false });
    const early = await starting.inject({ method: 'GET', url: '/tasks' });
    expect(early.statusCode).toBe(503);
    expect(early.json()).toMatchObject({ code: 'not_ready' });
    await starting.close();
    const guarded = await serviceWith(new ShapeOnlyStore(), { token: 's3cret' });
    const refused = await guarded.inject({ method: 'POST', url: '/tasks', payload: { title: 'a' } });
    expect(refused.statusCode).toBe(401);
    expect(JSON.stringify(refused.json())).not.toContain('s3cret');
    const allowed = await guarded.inject({
      method: 'POST',
      url: '/tasks',
      headers: { authorization: 'Bearer s3cret' },
      payload: { title: 'a' },
    });
    expect(allowed.statusCode).toBe(201);
  });
});

describe('the OpenAPI document', () => {
  it('describes every task route with its request and error shapes, and hides the probes, the event route and the job route', async () => {
    const service = await serviceWith(new ShapeOnlyStore());
    const document = (await service.inject({ method: 'GET', url: '/openapi.json' })).json<{
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>>;
    }>();
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths).sort()).toEqual(['/tasks', '/tasks/{id}', '/tasks/{id}/status']);
    expect(Object.keys(document.paths['/tasks'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(document.paths['/tasks/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch']);
    expect(document.paths['/tasks']?.['post']?.requestBody).toBeDefined();
    expect(Object.keys(document.paths['/tasks/{id}/status']?.['put']?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '400', '404', '409', '503']),
    );
  });
});

describe('the OpenAPI document declares what the running configuration enforces', () => {
  type Operation = { security?: unknown; responses: Record<string, unknown> };
  const operations = async (token?: string): Promise<Record<string, Operation>> => {
    const service = await serviceWith(new ShapeOnlyStore(), token === undefined ? {} : { token });
    const document = (await service.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, Record<string, Operation>>;
    }>();
    return Object.fromEntries(
      Object.entries(document.paths).flatMap(([path, methods]) =>
        Object.entries(methods).map(([method, operation]) => [`${method.toUpperCase()} ${path}`, operation]),
      ),
    );
  };
  const writes = ['POST /tasks', 'PUT /tasks/{id}/status', 'PATCH /tasks/{id}', 'DELETE /tasks/{id}'];

  it('without a token: no operation asks for one or answers 401', async () => {
    for (const [name, operation] of Object.entries(await operations())) {
      expect(operation.security, name).toBeUndefined();
      expect(Object.keys(operation.responses), name).not.toContain('401');
    }
  });

  it('with a token: the writes, and only they, ask for bearer and answer 401', async () => {
    for (const [name, operation] of Object.entries(await operations('s3cret'))) {
      const write = writes.includes(name);
      expect(operation.security, name).toEqual(write ? [{ bearer: [] }] : undefined);
      expect(Object.keys(operation.responses).includes('401'), name).toBe(write);
    }
  });
});

describe('a method a path does not have', () => {
  it.each([
    ['PATCH', '/tasks', 'GET, HEAD, POST'],
    ['POST', '/tasks/01a23000-0000-7000-8000-000000000000', 'DELETE, GET, HEAD, PATCH'],
    ['GET', '/tasks/01a23000-0000-7000-8000-000000000000/status', 'PUT'],
  ])('%s %s: 405 with Allow: %s', async (method, url, allow) => {
    const service = await serviceWith(new ShapeOnlyStore());
    const response = await service.inject({ method: method as 'GET', url });
    expect(response.statusCode).toBe(405);
    expect(response.headers['allow']).toBe(allow);
    expect(response.json()).toMatchObject({ code: 'method_not_allowed' });
  });

  it('QUERY, which carries a body, gets its 405 before any body is read', async () => {
    const service = await serviceWith(new ShapeOnlyStore());
    const response = await service.inject({ method: 'QUERY' as 'GET', url: '/tasks' });
    expect(response.statusCode).toBe(405);
    expect(response.headers['allow']).toBe('GET, HEAD, POST');
  });

  it('a path no route has is still 404', async () => {
    const service = await serviceWith(new ShapeOnlyStore());
    const response = await service.inject({ method: 'GET', url: '/nowhere' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ code: 'route_not_found' });
  });
});

describe('the notification service', () => {
  it(`keeps the last ${RECEIVED_WINDOW} notifications, each once however often Dapr delivers it`, async () => {
    app = Fastify({ logger: false });
    await app.register(notificationApp);
    await app.ready();
    const service = app;
    const task = (n: number): Task => ({
      id: `01a23000-0000-7000-8000-${String(n).padStart(12, '0')}`,
      title: `t${n}`,
      description: '',
      status: 'completed',
      priority: 1,
      created_at: '2026-12-01T00:00:00.000Z',
      updated_at: '2026-12-01T00:00:00.000Z',
    });
    const notify = (n: number) =>
      service.inject({ method: 'POST', url: '/notifications', payload: { event_id: `evt-${n}`, task: task(n) } });
    expect((await notify(0)).statusCode).toBe(204);
    expect((await notify(0)).statusCode).toBe(204);
    for (let n = 1; n <= RECEIVED_WINDOW + 5; n++) await notify(n);
    const { items } = (await service.inject({ method: 'GET', url: '/notifications' })).json<{
      items: { event_id: string }[];
    }>();
    expect(items).toHaveLength(RECEIVED_WINDOW);
    expect(items[0]?.event_id).toBe('evt-6');
    expect(items.at(-1)?.event_id).toBe(`evt-${RECEIVED_WINDOW + 5}`);
  });
});
