/**
 * Due dates on real daprd with Dapr's real scheduler (the Jobs API), once per
 * state store: a task's due date is a Dapr job; when it fires, the service
 * publishes task.due on the real pub/sub, its subscription hears it, and the
 * real notification service is told, once. Each backend gets a scheduler of
 * its own, so killing it disturbs no other test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import { dueJobName } from '../../src/service/dapr/jobs.ts';
import { LOG } from '../../src/service/logging.ts';
import type { Notification } from '../../src/service/schemas/event.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { startScheduler, type SchedulerServer } from '../../testbed/harness/scheduler.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const backends: StateBackend[] = ['redis', 'postgresql'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const inMs = (ms: number): string => new Date(Date.now() + ms).toISOString();

describe.each(backends)('due dates on state.%s, through Dapr jobs on a real scheduler', (backend) => {
  let scheduler: SchedulerServer;
  let stack: TaskServiceStack;
  let api: JsonClient;
  beforeAll(async () => {
    scheduler = await startScheduler(join(testbed.dir, 'due-dates', backend, 'scheduler'));
    stack = await startTaskServiceStack(testbed, {
      name: `due-${backend}`,
      backend,
      stores: testbed,
      notifications: true,
      schedulerAddress: scheduler.address,
    });
    api = jsonClient(stack.url);
  });
  afterAll(async () => {
    await stack.stop();
    await scheduler.stop();
  });

  /** The due-date notifications the notification service recorded for `id`, with when the test first saw each. */
  const seen = new Map<string, number>();
  const dueNotifications = async (id: string): Promise<Notification[]> => {
    const notifications = jsonClient(stack.notifications?.url ?? '');
    const { items } = (await notifications.request<{ items: Notification[] }>('GET', '/notifications')).body;
    const mine = items.filter((item) => item.task.id === id && item.reason === 'due');
    for (const item of mine) if (!seen.has(item.event_id)) seen.set(item.event_id, Date.now());
    return mine;
  };
  /** The task.due deliveries the service's subscription handled for `id` (its log). */
  const handledDue = (id: string): unknown[] =>
    readFileSync(stack.process.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; type?: string; taskId?: string; eventId?: string })
      .filter((line) => line.msg === LOG.eventHandled && line.type === 'task.due' && line.taskId === id)
      .map((line) => line.eventId);
  const create = async (body: Record<string, unknown>): Promise<Task> => {
    const response = await api.request<Task>('POST', '/tasks', { title: `due ${Math.random()}`, ...body });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body;
  };
  const notifiedOnce = async (task: Task, timeoutMs: number): Promise<Notification> => {
    await waitUntil(async () => (await dueNotifications(task.id)).length > 0, {
      what: `the due-date notification of task ${task.id}`,
      timeoutMs,
      intervalMs: 100,
    });
    // A second firing or delivery would come within a few seconds: none does.
    await sleep(2_500);
    const notifications = await dueNotifications(task.id);
    expect(notifications).toHaveLength(1);
    expect(new Set(handledDue(task.id)).size).toBe(1);
    return notifications[0] as Notification;
  };

  it('announces a task due in 2 s with task.due and one notification, not before its due date', async () => {
    const dueAt = inMs(2_000);
    const task = await create({ due_at: dueAt.replace('Z', '+00:00') });
    // Stored as the same instant in UTC.
    expect(task.due_at).toBe(dueAt);
    expect((await api.request<Task>('GET', `/tasks/${task.id}`)).body.due_at).toBe(dueAt);
    const notification = await notifiedOnce(task, 20_000);
    expect(notification.task).toMatchObject({ id: task.id, due_at: dueAt, status: 'pending' });
    expect(seen.get(notification.event_id)).toBeGreaterThanOrEqual(Date.parse(dueAt) - 1_000);
  });

  it('moves the reminder when the due date changes, and drops it when the due date is removed', async () => {
    const moved = await create({ due_at: inMs(2_000) });
    const removed = await create({ due_at: inMs(2_000) });
    const later = inMs(6_000);
    const patched = await api.request<Task>('PATCH', `/tasks/${moved.id}`, { due_at: later });
    expect(patched.status).toBe(200);
    expect(patched.body.due_at).toBe(later);
    const cleared = await api.request<Task>('PATCH', `/tasks/${removed.id}`, { due_at: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body).not.toHaveProperty('due_at');
    // Past the first due date: nothing yet for either.
    await sleep(4_000);
    expect(await dueNotifications(moved.id)).toEqual([]);
    expect(await dueNotifications(removed.id)).toEqual([]);
    const notification = await notifiedOnce(moved, 20_000);
    expect(seen.get(notification.event_id)).toBeGreaterThanOrEqual(Date.parse(later) - 1_000);
    expect(await dueNotifications(removed.id)).toEqual([]);
  });

  it('cancels the reminder of a task completed or deleted before its due date', async () => {
    const completed = await create({ due_at: inMs(2_000) });
    const deleted = await create({ due_at: inMs(2_000) });
    expect((await api.request('PUT', `/tasks/${completed.id}/status`, { status: 'completed' })).status).toBe(200);
    expect((await api.request('DELETE', `/tasks/${deleted.id}`)).status).toBe(204);
    await sleep(5_000);
    expect(await dueNotifications(completed.id)).toEqual([]);
    expect(await dueNotifications(deleted.id)).toEqual([]);
    // Cancelled, not fired and ignored: daprd has no job of either any more.
    for (const task of [completed, deleted]) {
      const job = await fetch(`${stack.daprd.httpUrl}/v1.0-alpha1/jobs/${dueJobName(task.id)}`, {
        headers: { 'dapr-api-token': stack.daprTokens.api },
      });
      expect(job.status, `the job of task ${task.id}`).not.toBe(200);
    }
  });

  it('does nothing when a reminder fires for a task completed since, and moves one that fires early', async () => {
    // Reminders left behind as a failed cancel or a failed write would leave them: scheduled through daprd directly.
    const schedule = async (id: string, dueTime: string) => {
      const response = await fetch(`${stack.daprd.httpUrl}/v1.0-alpha1/jobs/${dueJobName(id)}`, {
        method: 'POST',
        headers: { 'dapr-api-token': stack.daprTokens.api, 'content-type': 'application/json' },
        // With data: daprd fails to deliver an HTTP-scheduled job that has none (an empty protobuf Value).
        body: JSON.stringify({ dueTime, repeats: 1, overwrite: true, data: { left: 'behind' } }),
      });
      expect(response.status, await response.text()).toBe(204);
    };
    const done = await create({ due_at: inMs(60_000) });
    expect((await api.request('PUT', `/tasks/${done.id}/status`, { status: 'completed' })).status).toBe(200);
    await schedule(done.id, inMs(1_000));
    const early = await create({ due_at: inMs(6_000) });
    await schedule(early.id, inMs(1_000));
    await sleep(4_000);
    expect(await dueNotifications(done.id)).toEqual([]);
    expect(await dueNotifications(early.id)).toEqual([]);
    const notification = await notifiedOnce(early, 20_000);
    expect(seen.get(notification.event_id)).toBeGreaterThanOrEqual(Date.parse(early.due_at ?? '') - 1_000);
    expect(await dueNotifications(done.id)).toEqual([]);
  });

  it('fires after the service and the scheduler were both restarted between scheduling and the due date', async () => {
    const task = await create({ due_at: inMs(8_000) });
    await stack.restartReplica(0);
    await scheduler.crashAndRestart();
    await notifiedOnce(task, 30_000);
  });

  it('refuses a due date in the past, or not RFC 3339, with 400 naming due_at', async () => {
    const past = await api.request<{ code: string; field?: string }>('POST', '/tasks', {
      title: 'late',
      due_at: '2020-01-01T00:00:00Z',
    });
    expect(past.status).toBe(400);
    expect(past.body).toMatchObject({ code: 'validation_failed', field: 'due_at' });
    const task = await create({});
    const patched = await api.request<{ field?: string }>('PATCH', `/tasks/${task.id}`, { due_at: 'next week' });
    expect(patched.status).toBe(400);
    expect(patched.body.field).toBe('due_at');
    expect((await api.request<Task>('GET', `/tasks/${task.id}`)).body).not.toHaveProperty('due_at');
  });
});
