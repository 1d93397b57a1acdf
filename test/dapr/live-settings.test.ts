/**
 * Live settings on real daprd, once per state store: the configuration.redis
 * Component the operator renders for spec.settings, on a redis-server of the
 * test's own (keyspace notifications on), read at start and followed through
 * Dapr's Configuration API. A change made in Redis changes what the service
 * does within seconds, in the same process; a bad value is ignored with the
 * key named, and the last good value stays.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import { LOG } from '../../src/service/logging.ts';
import type { Notification } from '../../src/service/schemas/event.ts';
import type { Task, TaskPage } from '../../src/service/schemas/task.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { redisCommand, startRedis, type RedisServer } from '../../testbed/harness/redis.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const backends: StateBackend[] = ['redis', 'postgresql'];

interface LogLine {
  msg?: string;
  key?: string;
  value?: unknown;
}

describe.each(backends)('live settings on state.%s, through the Dapr Configuration API', (backend) => {
  let settingsRedis: RedisServer;
  let stack: TaskServiceStack;
  let api: JsonClient;
  let pid: number | undefined;
  const set = async (key: string, value: string) => {
    expect(await redisCommand(settingsRedis, 'SET', key, value)).toBe('+OK');
  };
  beforeAll(async () => {
    // The stack's Secret holds the test bed Redis' password: this one takes the same.
    settingsRedis = await startRedis(join(testbed.dir, 'settings', backend), testbed.redis.password);
    await set('max-page-size', '5');
    stack = await startTaskServiceStack(testbed, {
      name: `settings-${backend}`,
      backend,
      stores: testbed,
      notifications: true,
      settingsStore: settingsRedis.address,
    });
    api = jsonClient(stack.url);
    pid = stack.process.pid;
  });
  afterAll(async () => {
    await stack.stop();
    await settingsRedis.stop();
  });

  const lines = (): LogLine[] =>
    readFileSync(stack.process.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  const pageSize = async (): Promise<number> =>
    (await api.request<TaskPage>('GET', '/tasks?limit=20')).body.items.length;
  const create = async (): Promise<{ status: number; body: Task & { code?: string } }> =>
    api.request<Task & { code?: string }>('POST', '/tasks', { title: `settings ${Math.random()}` });

  it('reads the settings at start: max-page-size caps a page', async () => {
    for (let i = 0; i < 7; i++) expect((await create()).status).toBe(201);
    expect(await pageSize()).toBe(5);
    const page = await api.request<TaskPage>('GET', '/tasks?limit=20');
    expect(page.body.next_cursor).not.toBeNull();
  });

  it('turns read-only on and off within seconds, without a restart, logging each change', async () => {
    await set('read-only', 'true');
    await waitUntil(async () => (await create()).status === 503, { what: 'writes refused', timeoutMs: 10_000 });
    const refused = await create();
    expect(refused.body.code).toBe('read_only');
    // Reads go on.
    expect(await pageSize()).toBe(5);
    await set('read-only', 'false');
    await waitUntil(async () => (await create()).status === 201, { what: 'writes taken again', timeoutMs: 10_000 });
    const changes = lines().filter((line) => line.msg === LOG.settingChanged && line.key === 'read-only');
    expect(changes.map((line) => line.value)).toEqual([true, false]);
    expect(stack.process.pid).toBe(pid);
  });

  it('stops and resumes notifications with notifications-enabled', async () => {
    const notifications = jsonClient(stack.notifications?.url ?? '');
    const notified = async (id: string) =>
      (await notifications.request<{ items: Notification[] }>('GET', '/notifications')).body.items.some(
        (item) => item.task.id === id,
      );
    await set('notifications-enabled', 'false');
    await waitUntil(
      () =>
        Promise.resolve(
          lines().some((line) => line.msg === LOG.settingChanged && line.key === 'notifications-enabled'),
        ),
      { what: 'the change to be taken', timeoutMs: 10_000 },
    );
    const quiet = (await create()).body;
    expect((await api.request('PUT', `/tasks/${quiet.id}/status`, { status: 'completed' })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await notified(quiet.id)).toBe(false);
    await set('notifications-enabled', 'true');
    await waitUntil(
      () =>
        Promise.resolve(
          lines().filter((line) => line.msg === LOG.settingChanged && line.key === 'notifications-enabled').length ===
            2,
        ),
      { what: 'the change back to be taken', timeoutMs: 10_000 },
    );
    const heard = (await create()).body;
    expect((await api.request('PUT', `/tasks/${heard.id}/status`, { status: 'completed' })).status).toBe(200);
    await waitUntil(() => notified(heard.id), { what: 'the notification', timeoutMs: 10_000 });
    expect(stack.process.pid).toBe(pid);
  });

  it('ignores a bad value with a warning naming the key, keeping the last good one', async () => {
    await set('max-page-size', 'lots');
    await waitUntil(
      () => Promise.resolve(lines().some((line) => line.msg === LOG.settingIgnored && line.key === 'max-page-size')),
      { what: 'the warning', timeoutMs: 10_000 },
    );
    expect(await pageSize()).toBe(5);
    await set('max-page-size', '3');
    await waitUntil(async () => (await pageSize()) === 3, { what: 'the new page size', timeoutMs: 10_000 });
  });
});
