/**
 * Filling a task service's store for a benchmark: `count` pending tasks in the
 * service's own layout (src/service/task-index.ts), as if created one after
 * another a day ago, written through daprd's bulk state API, BATCH items a
 * request. Creating them one by one would take longer than what they serve.
 */
import type { StateBackend } from '../src/api/resource.ts';
import { names } from '../src/controller/names.ts';
import { pageKey, PAGE_SIZE, statusChain, taskKey, type Chain, type TaskDocument } from '../src/service/task-index.ts';
import { MonotonicIds } from '../src/service/tasks.ts';
import type { TaskServiceStack } from '../test/support/task-service-stack.ts';

export const BATCH = 500;

/** Saves `items` through daprd's bulk state API of `component`, BATCH at a time, one request after another. */
export async function bulkSave(
  stack: TaskServiceStack,
  component: string,
  items: { key: string; value: unknown }[],
): Promise<void> {
  const url = `${stack.daprd.httpUrl}/v1.0/state/${component}`;
  for (let at = 0; at < items.length; at += BATCH) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'dapr-api-token': stack.daprTokens.api },
      body: JSON.stringify(items.slice(at, at + BATCH)),
    });
    if (!response.ok) throw new Error(`bulk save answered ${response.status}: ${await response.text()}`);
  }
}

/** The documents and index pages of `count` pending tasks, as the service would have written them. */
export function taskLayout(count: number): {
  documents: { key: string; value: TaskDocument }[];
  index: { key: string; value: unknown }[];
} {
  const ids = new MonotonicIds();
  const start = Date.now() - 86_400_000;
  const documents: { key: string; value: TaskDocument }[] = [];
  const pages = new Map<string, string[]>();
  for (let n = 0; n < count; n++) {
    const at = new Date(start + n);
    const id = ids.next(at.getTime(), crypto.getRandomValues(new Uint8Array(10)));
    const position = { page: Math.floor(n / PAGE_SIZE), slot: n % PAGE_SIZE };
    documents.push({
      key: taskKey(id),
      value: {
        task: {
          id,
          title: `task ${n}`,
          description: '',
          status: 'pending',
          priority: 1,
          created_at: at.toISOString(),
          updated_at: at.toISOString(),
        },
        version: 1,
        listed: position,
        byStatus: position,
      },
    });
    for (const chain of ['all', statusChain('pending')] as Chain[]) {
      const key = pageKey(chain, position.page);
      pages.set(key, [...(pages.get(key) ?? []), id]);
    }
  }
  const index: { key: string; value: unknown }[] = [...pages].map(([key, slots]) => ({ key, value: { slots } }));
  const last = Math.floor((count - 1) / PAGE_SIZE);
  for (const chain of ['all', statusChain('pending')] as Chain[]) {
    index.push({ key: `task-index|${chain}|tail`, value: { page: last } });
  }
  return { documents, index };
}

/** Writes `count` pending tasks into the stack's `backend` store, in the service's layout; returns their ids. */
export async function fill(stack: TaskServiceStack, backend: StateBackend, count: number): Promise<string[]> {
  const { documents, index } = taskLayout(count);
  await bulkSave(stack, names.stateComponent(stack.taskApi, backend), [...documents, ...index]);
  return documents.map(({ value }) => value.task.id);
}
