/**
 * The overdue sweep on real daprd, once per state store: the cron binding the
 * operator renders for spec.overdueSweep (every second here) posts to the
 * service, which publishes task.overdue on the real pub/sub for exactly the
 * tasks past their due date and not completed, once each however many sweeps
 * run; the service's own subscription handles what was published.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import { LOG } from '../../src/service/logging.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const backends: StateBackend[] = ['redis', 'postgresql'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const inMs = (ms: number): string => new Date(Date.now() + ms).toISOString();

interface LogLine {
  msg?: string;
  type?: string;
  taskId?: string;
  eventId?: string;
  overdue?: number;
  announced?: number;
}

describe.each(backends)('the overdue sweep on state.%s, through a real cron binding', (backend) => {
  let stack: TaskServiceStack;
  let api: JsonClient;
  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name: `sweep-${backend}`,
      backend,
      stores: testbed,
      overdueSweep: '@every 1s',
    });
    api = jsonClient(stack.url);
  });
  afterAll(() => stack.stop());

  const lines = (): LogLine[] =>
    readFileSync(stack.process.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  /** The task.overdue deliveries the service's subscription handled, per task id. */
  const overdueHandled = (): Map<string, string[]> => {
    const handled = new Map<string, string[]>();
    for (const line of lines()) {
      if (line.msg !== LOG.eventHandled || line.type !== 'task.overdue' || line.taskId === undefined) continue;
      handled.set(line.taskId, [...(handled.get(line.taskId) ?? []), line.eventId ?? '']);
    }
    return handled;
  };
  const sweeps = (): number => lines().filter((line) => line.msg === LOG.sweepDone).length;
  const create = async (body: Record<string, unknown>): Promise<Task> => {
    const response = await api.request<Task>('POST', '/tasks', { title: `sweep ${Math.random()}`, ...body });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body;
  };

  it('publishes task.overdue once for each task past its due date and not completed, and for no other', async () => {
    const overdue = await create({ due_at: inMs(1_500) });
    const startedOverdue = await create({ due_at: inMs(1_500) });
    const completed = await create({ due_at: inMs(1_500) });
    const notYet = await create({ due_at: inMs(120_000) });
    const noDueDate = await create({});
    expect((await api.request('PUT', `/tasks/${startedOverdue.id}/status`, { status: 'in_progress' })).status).toBe(
      200,
    );
    expect((await api.request('PUT', `/tasks/${completed.id}/status`, { status: 'completed' })).status).toBe(200);
    await waitUntil(
      () => Promise.resolve(overdueHandled().has(overdue.id) && overdueHandled().has(startedOverdue.id)),
      {
        what: 'task.overdue for both overdue tasks',
        timeoutMs: 20_000,
        intervalMs: 200,
      },
    );
    // Several sweeps more: none announces them again.
    const before = sweeps();
    await waitUntil(() => Promise.resolve(sweeps() >= before + 3), { what: 'three more sweeps', timeoutMs: 20_000 });
    await sleep(500);
    const handled = overdueHandled();
    expect(handled.get(overdue.id)).toEqual([`${overdue.id}/overdue/${overdue.due_at ?? ''}`]);
    expect(handled.get(startedOverdue.id)).toHaveLength(1);
    for (const task of [completed, notYet, noDueDate]) expect(handled.has(task.id), task.title).toBe(false);
    // A due date moved past again is a new one: overdue once more when it comes.
    const later = inMs(1_500);
    expect((await api.request('PATCH', `/tasks/${overdue.id}`, { due_at: later })).status).toBe(200);
    await waitUntil(() => Promise.resolve((overdueHandled().get(overdue.id) ?? []).length === 2), {
      what: 'task.overdue for the new due date',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    expect(overdueHandled().get(overdue.id)?.[1]).toBe(`${overdue.id}/overdue/${later}`);
  });

  it('takes the sweep only from its own sidecar', async () => {
    const forged = await fetch(`${stack.url}/bindings/overdue-sweep`, { method: 'POST' });
    expect(forged.status).toBe(401);
  });
});
