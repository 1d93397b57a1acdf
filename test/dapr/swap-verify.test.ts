/**
 * Verify on real daprd, Redis and PostgreSQL, with a race held still: the
 * copier reads a task in the old store, then a status change of it is
 * mirrored into the new store before the copier reads that one. The new
 * store's copy is a version ahead and has no index entries yet (only the
 * copier makes them). Verify must adopt it all the same; skipped as newer, the
 * task was in no listing once the new store was the truth, though a GET found
 * it (seen as one task in a thousand in the swap tests, now and then).
 */
import type { DaprClient } from '@dapr/dapr';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StoreRef } from '../../src/api/contract.ts';
import { DEFAULT_SWAP_SETTINGS, startSwap, stepSwap, type SwapState } from '../../src/controller/swap.ts';
import { names } from '../../src/controller/names.ts';
import { DaprTaskStore } from '../../src/service/dapr/task-store.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { jsonClient } from '../support/http.ts';
import { swapPods } from '../support/swap-load.ts';
import { sidecarClient, startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const TOKEN = 'swap-verify-control-token-0123456789';
const SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 5_000, stepTimeoutMs: 20_000 };

describe('verify, when a mirrored write lands between its two reads', () => {
  let stack: TaskServiceStack;
  let client: DaprClient;

  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name: 'swap-verify',
      backend: 'redis',
      stores: testbed,
      swap: { controlToken: TOKEN, replicas: 1 },
    });
    client = sidecarClient(stack);
  }, 180_000);

  afterAll(async () => {
    await client.stop();
    await stack.stop();
  });

  it('gives the newer, unlisted copy its entries, so the task is listed after the flip', async () => {
    const api = jsonClient(stack.url);
    const pods = swapPods(() => [stack.url], TOKEN);
    const from: StoreRef = { component: names.stateComponent(stack.taskApi, 'redis'), generation: '0' };
    const to: StoreRef = { component: names.stateComponent(stack.taskApi, 'postgresql'), generation: 'g1' };
    const before = await api.request<Task>('POST', '/tasks', { title: 'copied by the backfill', priority: 1 });
    expect(before.status).toBe(201);

    let state: SwapState = startSwap(from, to, 0);
    while (state.phase !== 'Verify') state = await stepSwap(state, pods, SETTINGS);
    // Created in dual write: the old store lists it; the new one holds the mirrored copy, without entries.
    const created = await api.request<Task>('POST', '/tasks', { title: 'changed between the two reads', priority: 2 });
    expect(created.status).toBe(201);
    // The change as the mirror received it, and the old store not yet: the old store's version 1 is what
    // verify reads there, the new store's version 2 what it reads here.
    const changed: Task = { ...created.body, status: 'in_progress', updated_at: new Date().toISOString() };
    await new DaprTaskStore(client, to.component, to.generation).mirror({ task: changed, version: 2 });

    while (state.phase !== 'Completed') state = await stepSwap(state, pods, SETTINGS);
    expect(state.blocked).toBeUndefined();
    const listed = await api.request<{ items: Task[] }>('GET', '/tasks?limit=100');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((task) => task.title)).toEqual([
      'copied by the backfill',
      'changed between the two reads',
    ]);
    const read = await api.request<Task>('GET', `/tasks/${created.body.id}`);
    expect([read.status, read.body.status, read.headers.get('etag')]).toEqual([200, 'in_progress', '"2"']);
    const inProgress = await api.request<{ items: Task[] }>('GET', '/tasks?status=in_progress');
    expect(inProgress.body.items.map((task) => task.id)).toEqual([created.body.id]);
  }, 120_000);
});
