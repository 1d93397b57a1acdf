/**
 * The task service on real daprd, once with state.redis and once with
 * state.postgresql: Components rendered by the operator's builders, pub/sub on
 * the test bed's redis-server, the API token read through the Kubernetes
 * secret store from the test bed's apiserver, completed tasks announced to a
 * real notification service through Dapr service invocation.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import type { Notification } from '../../src/service/schemas/event.ts';
import { TASK_STATUSES, type Task } from '../../src/service/schemas/task.ts';
import { names } from '../../src/controller/names.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import { allTasks, startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const TOKEN = 'tok-3f9a1c77e2b04d5e';
const backends: StateBackend[] = ['redis', 'postgresql'];
const UNKNOWN_ID = '01890000-0000-7000-8000-000000000000';

interface ErrorBody {
  code: string;
  message: string;
  field?: string;
  current?: Task;
}

/** The service's JSON log lines. */
function logLines(stack: TaskServiceStack): Record<string, unknown>[] {
  return readFileSync(stack.process.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe.each(backends)('task service on state.%s', (backend) => {
  let stack: TaskServiceStack;
  let api: JsonClient;
  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name: `svc-${backend}`,
      backend,
      stores: testbed,
      apiToken: TOKEN,
      notifications: true,
    });
    api = jsonClient(stack.url, TOKEN);
  });
  afterAll(() => stack.stop());

  const create = async (title: string): Promise<Task> => {
    const response = await api.request<Task>('POST', '/tasks', { title });
    expect(response.status).toBe(201);
    return response.body;
  };

  it("runs the seed's validation flow: create, get, complete by ?status=, delete, get again", async () => {
    const created = await api.request<Task>('POST', '/tasks', { title: 'Write the report', priority: 3 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ title: 'Write the report', description: '', status: 'pending', priority: 3 });
    const { id } = created.body;

    const read = await api.request<Task>('GET', `/tasks/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    expect(read.headers.get('etag')).toMatch(/^".+"$/);
    // Each write answers the ETag a read would: a client can send If-Match without reading first.
    expect(created.headers.get('etag')).toBe(read.headers.get('etag'));

    const completed = await api.request<Task>('PUT', `/tasks/${id}/status?status=completed`);
    expect(completed.status).toBe(200);
    expect(completed.body.status).toBe('completed');
    expect(completed.headers.get('etag')).toBe((await api.request('GET', `/tasks/${id}`)).headers.get('etag'));
    expect(completed.headers.get('etag')).not.toBe(created.headers.get('etag'));

    expect((await api.request('DELETE', `/tasks/${id}`)).status).toBe(204);
    const gone = await api.request<ErrorBody>('GET', `/tasks/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('task_not_found');
    expect((await api.request('DELETE', `/tasks/${id}`)).status).toBe(404);
  });

  it('lets exactly one of 50 writers holding the same ETag win, per version; the rest get 409 and the winner', async () => {
    const task = await create('contended');
    for (const writers of [50, 10]) {
      const etag = (await api.request('GET', `/tasks/${task.id}`)).headers.get('etag') ?? '';
      const submitted = Array.from({ length: writers }, (_, i) => TASK_STATUSES[i % TASK_STATUSES.length]);
      const results = await Promise.all(
        submitted.map((status) =>
          api.request<Task | ErrorBody>('PUT', `/tasks/${task.id}/status`, { status }, { 'if-match': etag }),
        ),
      );
      const winners = results.filter((result) => result.status === 200);
      const losers = results.filter((result) => result.status === 409);
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(writers - 1);
      const winner = winners[0]?.body as Task;
      for (const loser of losers) expect((loser.body as ErrorBody).current).toEqual(winner);
      const final = await api.request<Task>('GET', `/tasks/${task.id}`);
      expect(final.body).toEqual(winner);
      expect(submitted).toContain(final.body.status);
    }
  });

  it('indexes every one of 50 concurrent creates, and pages through them in creation order', async () => {
    const created = await Promise.all(Array.from({ length: 50 }, (_, i) => create(`concurrent ${i}`)));
    const listed = await allTasks(api, 7);
    const listedIds = listed.map((task) => task.id);
    expect(new Set(listedIds).size).toBe(listedIds.length);
    expect(listedIds).toEqual([...listedIds].sort());
    for (const task of created) expect(listedIds).toContain(task.id);

    const done = await create('filter me');
    await api.request('PUT', `/tasks/${done.id}/status`, { status: 'completed' });
    const completed = await allTasks(api, 5, 'completed');
    expect(completed.map((task) => task.id)).toContain(done.id);
    expect(completed.every((task) => task.status === 'completed')).toBe(true);
  });

  it('pages across index pages in creation order, and a status filter pages exactly its tasks, in the order they took it', async () => {
    const before = new Set((await allTasks(api, 100)).map((task) => task.id));
    // More than two index pages (128 entries each), made in small concurrent groups.
    const made: Task[] = [];
    for (let group = 0; group < 30; group++) {
      made.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => create(`paged ${group * 10 + i}`)))));
    }
    const listed = (await allTasks(api, 37)).filter((task) => !before.has(task.id));
    expect(listed.map((task) => task.id)).toEqual(made.map((task) => task.id).sort());
    expect(listed).toHaveLength(300);

    // Every seventh one completed, newest first: the completed listing follows the completions.
    const completing = made.filter((_, i) => i % 7 === 0).reverse();
    for (const task of completing) {
      expect((await api.request('PUT', `/tasks/${task.id}/status`, { status: 'completed' })).status).toBe(200);
    }
    const completed = (await allTasks(api, 6, 'completed')).map((task) => task.id);
    expect(completed.filter((id) => completing.some((task) => task.id === id))).toEqual(
      completing.map((task) => task.id),
    );
    const pending = (await allTasks(api, 50, 'pending')).map((task) => task.id);
    for (const task of completing) expect(pending).not.toContain(task.id);
    expect(pending).toContain(made[1]?.id);

    // A deleted task leaves every listing, and the cursor of one listing is refused by another:
    // well-formed, so 409 (list from the start), not 400.
    const gone = made[2];
    expect((await api.request('DELETE', `/tasks/${gone?.id ?? ''}`)).status).toBe(204);
    expect((await allTasks(api, 100)).map((task) => task.id)).not.toContain(gone?.id);
    const firstPage = await api.request<{ next_cursor: string }>('GET', '/tasks?limit=5');
    const mixed = await api.request<ErrorBody>(
      'GET',
      `/tasks?limit=5&status=pending&cursor=${encodeURIComponent(firstPage.body.next_cursor)}`,
    );
    expect(mixed.status).toBe(409);
    expect(mixed.body).toMatchObject({ code: 'cursor_mismatch', field: 'cursor' });
  });

  it('delivers task.created and task.completed to the subscription route; only completed tasks are notified', async () => {
    const announced = await create('announce me');
    const pending = await create('stay pending');
    expect((await api.request('PUT', `/tasks/${announced.id}/status`, { status: 'completed' })).status).toBe(200);

    const handled = (type: string, taskId: string) => () =>
      Promise.resolve(
        logLines(stack).some(
          (line) => line.msg === 'task event handled' && line.type === type && line.taskId === taskId,
        ),
      );
    for (const [type, task] of [
      ['task.created', announced],
      ['task.created', pending],
      ['task.completed', announced],
    ] as const) {
      await waitUntil(handled(type, task.id), { what: `${type} for ${task.title}`, timeoutMs: 30_000 });
    }
    const notifications = jsonClient(stack.notifications?.url ?? '');
    const notified = async () =>
      (await notifications.request<{ items: Notification[] }>('GET', '/notifications')).body.items;
    await waitUntil(async () => (await notified()).some((item) => item.task.id === announced.id), {
      what: 'the notification service to hear of the completed task',
      timeoutMs: 30_000,
    });
    const items = await notified();
    expect(items.filter((item) => item.task.id === announced.id)).toHaveLength(1);
    expect(items.map((item) => item.task.id)).not.toContain(pending.id);
    expect(items.every((item) => item.task.status === 'completed')).toBe(true);
  });

  const validId = UNKNOWN_ID;
  const badRequests: [string, string, string, unknown, string][] = [
    ['no title', 'POST', '/tasks', {}, 'title'],
    ['empty title', 'POST', '/tasks', { title: '' }, 'title'],
    ['blank title', 'POST', '/tasks', { title: '   ' }, 'title'],
    ['title of 201 characters', 'POST', '/tasks', { title: 'x'.repeat(201) }, 'title'],
    ['numeric title', 'POST', '/tasks', { title: 42 }, 'title'],
    ['priority 0', 'POST', '/tasks', { title: 'ok', priority: 0 }, 'priority'],
    ['priority 6', 'POST', '/tasks', { title: 'ok', priority: 6 }, 'priority'],
    ['fractional priority', 'POST', '/tasks', { title: 'ok', priority: 2.5 }, 'priority'],
    ['priority as a string', 'POST', '/tasks', { title: 'ok', priority: '3' }, 'priority'],
    ['unknown status', 'POST', '/tasks', { title: 'ok', status: 'done' }, 'status'],
    ['numeric description', 'POST', '/tasks', { title: 'ok', description: 123 }, 'description'],
    ['description of 2001 characters', 'POST', '/tasks', { title: 'ok', description: 'd'.repeat(2001) }, 'description'],
    ['unknown field', 'POST', '/tasks', { title: 'ok', owner: 'me' }, 'owner'],
    ['an array body', 'POST', '/tasks', '[]', 'body'],
    ['malformed JSON', 'POST', '/tasks', '{"title":', 'body'],
    ['unknown status in the body', 'PUT', `/tasks/${validId}/status`, { status: 'done' }, 'status'],
    ['empty status body', 'PUT', `/tasks/${validId}/status`, {}, 'status'],
    ['no status at all', 'PUT', `/tasks/${validId}/status`, undefined, 'status'],
    ['unknown status in the query', 'PUT', `/tasks/${validId}/status?status=archived`, undefined, 'status'],
    ['extra field in the status body', 'PUT', `/tasks/${validId}/status`, { status: 'completed', extra: 1 }, 'extra'],
    ['malformed id on get', 'GET', '/tasks/not-a-uuid', undefined, 'id'],
    ['malformed id on status', 'PUT', '/tasks/not-a-uuid/status?status=completed', undefined, 'id'],
    ['malformed id on delete', 'DELETE', '/tasks/123', undefined, 'id'],
    ['page size 0', 'GET', '/tasks?limit=0', undefined, 'limit'],
    ['page size 1000', 'GET', '/tasks?limit=1000', undefined, 'limit'],
    ['page size not a number', 'GET', '/tasks?limit=abc', undefined, 'limit'],
    ['unknown status filter', 'GET', '/tasks?status=nope', undefined, 'status'],
    ['malformed cursor', 'GET', '/tasks?cursor=xyz', undefined, 'cursor'],
    ['unknown query parameter', 'GET', '/tasks?sort=desc', undefined, 'sort'],
  ];
  it.each(badRequests)('answers 400 naming the field: %s', async (_name, method, path, body, field) => {
    const response = await api.request<ErrorBody>(method, path, body);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'validation_failed', field });
    expect(response.body.message).toContain(field);
  });

  it('requires the bearer token on write routes only, and never logs it', async () => {
    const task = await create('guarded');
    const anonymous = jsonClient(stack.url);
    const wrong = jsonClient(stack.url, 'not-the-token');
    for (const client of [anonymous, wrong]) {
      for (const [method, path, body] of [
        ['POST', '/tasks', { title: 'sneaky' }],
        ['PUT', `/tasks/${task.id}/status`, { status: 'completed' }],
        ['DELETE', `/tasks/${task.id}`, undefined],
      ] as const) {
        const response = await client.request<ErrorBody>(method, path, body);
        expect(response.status, `${method} ${path}`).toBe(401);
        expect(response.body.code).toBe('unauthorized');
      }
    }
    const basic = await anonymous.request('POST', '/tasks', { title: 'x' }, { authorization: `Basic ${TOKEN}` });
    expect(basic.status).toBe(401);
    expect((await anonymous.request('GET', `/tasks/${task.id}`)).status).toBe(200);
    expect((await api.request('DELETE', `/tasks/${task.id}`)).status).toBe(204);

    for (const logFile of [stack.process.logFile, stack.daprd.process.logFile]) {
      expect(readFileSync(logFile, 'utf8')).not.toContain(TOKEN);
    }
  });

  it('serves its OpenAPI document and probes', async () => {
    const document = await api.request<{ paths: Record<string, unknown> }>('GET', '/openapi.json');
    expect(document.status).toBe(200);
    expect(Object.keys(document.body.paths)).toEqual(
      expect.arrayContaining(['/tasks', '/tasks/{id}', '/tasks/{id}/status']),
    );
    expect((await api.request('GET', '/healthz')).status).toBe(200);
    expect((await api.request('GET', '/readyz')).status).toBe(200);
  });

  it("takes events and notifications only from the pod's own sidecar, and its sidecar only from the app", async () => {
    const task = await create('forged');
    const forged = {
      specversion: '1.0',
      id: 'evt-forged',
      source: 'attacker',
      type: 'task.completed',
      data: { ...task, status: 'completed' },
    };
    const headers = { 'content-type': 'application/cloudevents+json' };
    // Anyone else who reaches the pod: no token, or a wrong one (the API token is not the app token).
    const attempts: Record<string, string>[] = [
      {},
      { 'dapr-api-token': 'not-the-token' },
      { 'dapr-api-token': stack.daprTokens.api },
    ];
    for (const extra of attempts) {
      const answer = await jsonClient(stack.url).request<ErrorBody>('POST', '/events/task', JSON.stringify(forged), {
        ...headers,
        ...extra,
      });
      expect(answer.status).toBe(401);
      expect(answer.body.code).toBe('unauthorized');
      expect(JSON.stringify(answer.body)).not.toContain(stack.daprTokens.app);
    }
    const notifications = jsonClient(stack.notifications?.url ?? '');
    const direct = await notifications.request('POST', '/notifications', { event_id: 'evt-forged', task: forged.data });
    expect(direct.status).toBe(401);
    // The real path still works: a completion through the API is delivered by daprd and notified (once).
    expect((await api.request('PUT', `/tasks/${task.id}/status`, { status: 'completed' })).status).toBe(200);
    const notified = async () =>
      (await notifications.request<{ items: Notification[] }>('GET', '/notifications')).body.items;
    await waitUntil(async () => (await notified()).some((item) => item.task.id === task.id), {
      what: 'the real completion to be notified',
      timeoutMs: 30_000,
    });
    expect((await notified()).filter((item) => item.task.id === task.id).map((item) => item.event_id)).not.toContain(
      'evt-forged',
    );
    // daprd refuses its API to a caller without the API token, and serves the app, which has it.
    const state = `${stack.daprd.httpUrl}/v1.0/state/${names.stateComponent(stack.taskApi, backend)}/anything`;
    expect((await fetch(state)).status).toBe(401);
    expect((await fetch(state, { headers: { 'dapr-api-token': stack.daprTokens.app } })).status).toBe(401);
    expect((await fetch(state, { headers: { 'dapr-api-token': stack.daprTokens.api } })).status).toBe(204);
  });

  // Last: it stops the notification service.
  it('answers Dapr RETRY when the notification service is down, DROP for what is no task event', async () => {
    await stack.notifications?.process.stop();
    const task = await create('nobody listens');
    // As daprd delivers: with the app token.
    const deliver = (event: unknown) =>
      jsonClient(stack.url).request<{ status: string }>('POST', '/events/task', JSON.stringify(event), {
        'content-type': 'application/cloudevents+json',
        'dapr-api-token': stack.daprTokens.app,
      });
    const completedEvent = {
      specversion: '1.0',
      id: 'evt-retry',
      source: 'test',
      type: 'task.completed',
      data: { ...task, status: 'completed' },
    };
    expect((await deliver(completedEvent)).body).toEqual({ status: 'RETRY' });
    expect((await deliver({ ...completedEvent, type: 'task.created' })).body).toEqual({ status: 'SUCCESS' });
    expect((await deliver({ ...completedEvent, type: 'task.archived' })).body).toEqual({ status: 'DROP' });
    expect((await deliver({ hello: 'world' })).body).toEqual({ status: 'DROP' });
  });
});
