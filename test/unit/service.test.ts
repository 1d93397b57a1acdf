import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventCounters } from '../../src/service/event-counters.ts';
import { classifyDelivery, taskEvent } from '../../src/service/events.ts';
import { fieldOf } from '../../src/service/plugins/errors.ts';
import { createTaskSchema, taskIdSchema, type Task } from '../../src/service/schemas/task.ts';
import { bucketOf, idsAfter, INDEX_BUCKETS, withId, withoutId } from '../../src/service/task-index.ts';
import { completes, newTask, uuidV7, withStatus } from '../../src/service/tasks.ts';

const random = (seed: number): Uint8Array => Uint8Array.from({ length: 10 }, (_, i) => (seed * 31 + i * 17) % 256);
const task: Task = newTask(
  { title: 'Write', description: '', status: 'pending', priority: 1 },
  uuidV7(1_700_000_000_000, random(1)),
  new Date(1_700_000_000_000),
);

describe('task ids', () => {
  it('are valid UUIDv7s that sort by creation time', () => {
    const ids = [3, 1, 2].map((offset) => uuidV7(1_700_000_000_000 + offset, random(offset)));
    for (const id of ids) {
      expect(taskIdSchema.safeParse(id).success).toBe(true);
      expect(id[14]).toBe('7');
      expect('89ab').toContain(id[19]);
    }
    expect([...ids].sort()).toEqual([ids[1], ids[2], ids[0]]);
  });
});

describe('id index', () => {
  it('spreads ids over every bucket', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => uuidV7(1_700_000_000_000 + i, random(i)));
    const counts = new Array<number>(INDEX_BUCKETS).fill(0);
    for (const id of ids) counts[bucketOf(id)] = (counts[bucketOf(id)] ?? 0) + 1;
    for (const count of counts) expect(count).toBeGreaterThan(2000 / INDEX_BUCKETS / 2);
  });

  it('puts an id in the same bucket in every process and version (stored data depends on it)', () => {
    expect(
      [
        '01a2310b-2dec-7187-b94a-2332a802a574',
        '01a2310b-2e1e-7a25-87b3-2fef2c3a50ff',
        '01a2310b-2e31-7a98-a75c-ef803a0c7a33',
        '00000000-0000-7000-8000-000000000000',
        'ffffffff-ffff-7fff-bfff-ffffffffffff',
      ].map(bucketOf),
    ).toEqual([2, 12, 13, 14, 8]);
  });

  it('adds and removes ids idempotently, and pages after a cursor in id order', () => {
    const bucket = withId(withId({ ids: ['b'] }, 'a'), 'a');
    expect(bucket.ids).toEqual(['b', 'a']);
    expect(withoutId(withoutId(bucket, 'a'), 'a').ids).toEqual(['b']);
    expect(idsAfter([{ ids: ['c', 'a'] }, { ids: ['d', 'b'] }], undefined)).toEqual(['a', 'b', 'c', 'd']);
    expect(idsAfter([{ ids: ['c', 'a'] }, { ids: ['d', 'b'] }], 'b')).toEqual(['c', 'd']);
  });
});

describe('task changes', () => {
  it('announces completion once, not on a repeat', () => {
    const done = withStatus(task, 'completed', new Date(1_700_000_001_000));
    expect(done.updated_at).not.toBe(task.updated_at);
    expect(completes(task, done)).toBe(true);
    expect(completes(done, withStatus(done, 'completed', new Date()))).toBe(false);
  });

  it('defaults and trims a created task', () => {
    expect(createTaskSchema.parse({ title: '  Write  ' })).toEqual({
      title: 'Write',
      description: '',
      status: 'pending',
      priority: 1,
    });
  });
});

describe('delivered events', () => {
  const event = (type: string) => ({ ...taskEvent('task.created', task, 'test', 'evt-1', new Date()), type });

  it('asks for a notification on task.completed only', () => {
    expect(classifyDelivery(event('task.completed'))).toMatchObject({ action: 'handle', notify: true, id: 'evt-1' });
    expect(classifyDelivery(event('task.created'))).toMatchObject({ action: 'handle', notify: false });
    expect(classifyDelivery(event('task.deleted'))).toMatchObject({ action: 'handle', notify: false });
  });

  it('drops what is not a task event', () => {
    expect(classifyDelivery(event('task.archived'))).toMatchObject({ action: 'drop' });
    expect(classifyDelivery({ hello: 'world' })).toMatchObject({ action: 'drop' });
    expect(classifyDelivery({ ...event('task.completed'), data: { id: 'x' } })).toMatchObject({ action: 'drop' });
  });
});

describe('validation errors', () => {
  it('name the field, or the unknown key of a strict object', () => {
    expect(fieldOf({ instancePath: '/title' }, 'body')).toBe('title');
    expect(fieldOf({ instancePath: '/', params: { keys: ['owner'] } }, 'body')).toBe('owner');
    expect(fieldOf({ instancePath: '/' }, 'querystring')).toBe('querystring');
  });
});

describe('src/service', () => {
  const sources = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => join(dir, file));

  it('reaches infrastructure only through @dapr/dapr: no store, broker or HTTP client library', () => {
    const forbidden =
      /from '(ioredis|redis|@redis\/[^']+|pg|postgres|kafkajs|undici|axios|node-fetch|got|node:http|node:https|http|https|node:net|net)'/;
    for (const file of sources('src/service')) {
      expect(readFileSync(file, 'utf8'), file).not.toMatch(forbidden);
      expect(readFileSync(file, 'utf8'), file).not.toMatch(/\bfetch\(/);
    }
  });
});

describe('event counters', () => {
  it('count answers by event type and notifications, in Prometheus text format', () => {
    const counters = new EventCounters();
    expect(counters.render()).toContain('\ntaskapi_notifications_sent_total 0\n');
    counters.answered('task.created', 'SUCCESS');
    counters.answered('task.created', 'SUCCESS');
    counters.answered('task.completed', 'RETRY');
    counters.answered('odd"type', 'DROP');
    counters.notified();
    const lines = counters.render().split('\n');
    expect(lines).toContain('taskapi_task_events_total{type="task.created",answer="SUCCESS"} 2');
    expect(lines).toContain('taskapi_task_events_total{type="task.completed",answer="RETRY"} 1');
    expect(lines).toContain('taskapi_task_events_total{type="odd\\"type",answer="DROP"} 1');
    expect(lines).toContain('taskapi_notifications_sent_total 1');
    expect(lines.filter((line) => line.startsWith('# TYPE'))).toEqual([
      '# TYPE taskapi_task_events_total counter',
      '# TYPE taskapi_notifications_sent_total counter',
    ]);
  });
});
