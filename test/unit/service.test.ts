import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventCounters } from '../../src/service/event-counters.ts';
import { applySettings, DEFAULT_SETTINGS, type Settings } from '../../src/service/settings.ts';
import { needsCopy } from '../../src/service/swap.ts';
import { classifyDelivery, taskEvent } from '../../src/service/events.ts';
import { fieldOf } from '../../src/service/plugins/errors.ts';
import { createTaskSchema, taskIdSchema, type Task } from '../../src/service/schemas/task.ts';
import {
  appendIds,
  asPage,
  clearSlot,
  decodeCursor,
  encodeCursor,
  entriesFrom,
  entryCounts,
  isFull,
  PAGE_SIZE,
  pageKey,
  statusChain,
  taskKey,
  type StoredValue,
} from '../../src/service/task-index.ts';
import {
  completes,
  dueAtProblem,
  MonotonicIds,
  newTask,
  reminderChange,
  uuidV7,
  withChanges,
  withStatus,
} from '../../src/service/tasks.ts';

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

describe('monotonic task ids', () => {
  it('only go up within a millisecond and when the clock steps back, and stay valid UUIDv7s', () => {
    const ids = new MonotonicIds();
    const made = [
      ids.next(1_700_000_000_000, random(5)),
      ids.next(1_700_000_000_000, random(1)),
      ids.next(1_700_000_000_000, random(9)),
      ids.next(1_699_999_999_000, random(2)),
      ids.next(1_700_000_000_001, random(0)),
    ];
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(made.length);
    for (const id of made) {
      expect(taskIdSchema.safeParse(id).success).toBe(true);
      expect(id[14]).toBe('7');
      expect('89ab').toContain(id[19]);
    }
    // The clock went back: the id keeps the last millisecond it saw.
    expect(made[3]?.slice(0, 13)).toBe(made[2]?.slice(0, 13));
  });

  it('runs past a full millisecond into the next one rather than wrap', () => {
    const ids = new MonotonicIds();
    const top = new Uint8Array(10).fill(0xff);
    const first = ids.next(1_700_000_000_000, top);
    const second = ids.next(1_700_000_000_000, top);
    expect(second > first).toBe(true);
    expect(second.slice(0, 13)).not.toBe(first.slice(0, 13));
  });
});

describe('the task index', () => {
  const ids = (count: number, from = 0) => Array.from({ length: count }, (_, i) => `id-${from + i}`);

  it('appends to a page up to its size, keeps a retried id in its slot, and hands back what does not fit', () => {
    const first = appendIds({ slots: [] }, ['a', 'b']);
    expect(first.page.slots).toEqual(['a', 'b']);
    expect([...first.slots]).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
    const retried = appendIds(first.page, ['b', 'c']);
    expect(retried.page.slots).toEqual(['a', 'b', 'c']);
    expect(retried.slots.get('b')).toBe(1);
    const nearlyFull = { slots: ids(PAGE_SIZE - 1) };
    const overflow = appendIds(nearlyFull, ['x', 'y', 'z']);
    expect(overflow.page.slots).toHaveLength(PAGE_SIZE);
    expect(overflow.slots.get('x')).toBe(PAGE_SIZE - 1);
    expect(overflow.rest).toEqual(['y', 'z']);
    expect(isFull(overflow.page)).toBe(true);
  });

  it('clears a slot only while it holds the id, leaving every other slot where it was', () => {
    const page = { slots: ['a', 'b', 'c'] };
    expect(clearSlot(page, 1, 'b').slots).toEqual(['a', null, 'c']);
    expect(clearSlot(page, 1, 'x')).toBe(page);
    expect(asPage({ slots: ['a', null, 7] }).slots).toEqual(['a', null, null]);
    expect(asPage(undefined).slots).toEqual([]);
  });

  it('reads entries from a position, skipping cleared slots, and says where the next read starts', () => {
    const page = { slots: ['a', null, 'c', 'd'] };
    expect(entriesFrom(page, 3, 1)).toEqual({
      entries: [
        { id: 'c', position: { page: 3, slot: 2 } },
        { id: 'd', position: { page: 3, slot: 3 } },
      ],
      next: { page: 3, slot: 4 },
    });
    expect(entriesFrom({ slots: ids(PAGE_SIZE) }, 3, PAGE_SIZE).next).toEqual({ page: 4, slot: 0 });
  });

  it('counts an entry only where its document points back at it, in the chain of its status', () => {
    const document = { task, version: 2, listed: { page: 0, slot: 5 }, byStatus: { page: 1, slot: 0 } };
    expect(entryCounts(document, 'all', { page: 0, slot: 5 })).toBe(true);
    expect(entryCounts(document, 'all', { page: 0, slot: 6 })).toBe(false);
    expect(entryCounts(document, statusChain('pending'), { page: 1, slot: 0 })).toBe(true);
    // The task moved on to another status: its old status entry no longer counts.
    expect(entryCounts(document, statusChain('completed'), { page: 1, slot: 0 })).toBe(false);
  });

  it('hands out cursors it can read back, and refuses others', () => {
    const cursor = { chain: statusChain('in_progress'), page: 12, slot: 40, generation: '0', after: undefined };
    expect(encodeCursor(cursor)).toBe('status-in_progress.12.40');
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
    expect(decodeCursor('all.0.0')).toEqual({ chain: 'all', page: 0, slot: 0, generation: '0', after: undefined });
    // After a swap: the generation, and the last task returned, to go on after it in another store.
    const after = '01a2310b-2dec-7187-b94a-2332a802a574';
    const swapped = { chain: 'all' as const, page: 3, slot: 7, generation: 'g2', after };
    expect(encodeCursor(swapped)).toBe(`g2.all.3.7.${after}`);
    expect(decodeCursor(encodeCursor(swapped))).toEqual(swapped);
    for (const bad of ['', 'all.1', 'status-done.1.1', 'all.-1.0', '01a2310b-2dec-7187-b94a-2332a802a574']) {
      expect(decodeCursor(bad)).toBeUndefined();
    }
    // A slot past a page's end (no cursor handed out has one) reads as that page's end.
    expect(decodeCursor(`all.1.${PAGE_SIZE + 1}`)).toMatchObject({ page: 1, slot: PAGE_SIZE });
  });

  it('keeps the stored layout: these keys are in every store already written', () => {
    expect(taskKey('01a2310b-2dec-7187-b94a-2332a802a574')).toBe('task|01a2310b-2dec-7187-b94a-2332a802a574');
    expect(pageKey('all', 3)).toBe('task-index|all|3');
    expect(pageKey(statusChain('completed'), 0)).toBe('task-index|status-completed|0');
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

describe('due dates', () => {
  const now = new Date('2027-03-01T12:00:00.000Z');
  const at = (due: string | undefined, status: Task['status'] = 'pending'): Task => {
    const changed: Task = { ...task, status };
    delete changed.due_at;
    return due === undefined ? changed : { ...changed, due_at: due };
  };
  const soon = '2027-03-01T12:05:00.000Z';
  const later = '2027-03-02T09:00:00.000Z';
  const past = '2027-03-01T11:00:00.000Z';

  it('stores the instant in UTC, and changes only the fields an update names', () => {
    const created = newTask(createTaskSchema.parse({ title: 'x', due_at: '2027-03-01T14:05:00+02:00' }), task.id, now);
    expect(created.due_at).toBe(soon);
    const renamed = withChanges(created, { title: 'y' }, now);
    expect(renamed).toMatchObject({ title: 'y', due_at: soon, priority: created.priority });
    expect(withChanges(created, { due_at: null }, now)).not.toHaveProperty('due_at');
    expect(withChanges(created, { due_at: '2027-03-02T10:00:00+01:00' }, now).due_at).toBe(later);
  });

  it('refuses a due date that is not in the future', () => {
    expect(dueAtProblem(soon, now)).toBeUndefined();
    expect(dueAtProblem(now.toISOString(), now)).toMatch(/^due_at: must be in the future/);
    expect(dueAtProblem(past, now)).toMatch(/^due_at: must be in the future/);
  });

  it.each<[string, Task | undefined, Task | undefined, ReturnType<typeof reminderChange>]>([
    ['a new task with a due date: scheduled', undefined, at(soon), { schedule: soon }],
    ['a new task without one: nothing', undefined, at(undefined), undefined],
    ['the due date moved: scheduled again', at(soon), at(later), { schedule: later }],
    ['the due date removed: cancelled', at(soon), at(undefined), 'cancel'],
    ['another field changed: nothing', at(soon), at(soon), undefined],
    ['completed: cancelled', at(soon), at(soon, 'completed'), 'cancel'],
    ['reopened before its due date: scheduled', at(soon, 'completed'), at(soon), { schedule: soon }],
    ['reopened past its due date: nothing (it is overdue)', at(past, 'completed'), at(past), undefined],
    ['deleted: cancelled', at(soon), undefined, 'cancel'],
    ['deleted past its due date: nothing left to cancel', at(past), undefined, undefined],
  ])('%s', (_what, before, after, change) => {
    expect(reminderChange(before, after, now)).toEqual(change);
  });
});

describe('live settings', () => {
  it.each<[string, Record<string, { value: string }>, Partial<Settings>, string[], string[]]>([
    ['nothing set: the defaults', {}, {}, [], []],
    [
      'each key read',
      { 'notifications-enabled': { value: 'false' }, 'max-page-size': { value: '25' }, 'read-only': { value: 'TRUE' } },
      { notificationsEnabled: false, maxPageSize: 25, readOnly: true },
      ['notifications-enabled', 'max-page-size', 'read-only'],
      [],
    ],
    [
      'bad values ignored, named, the last good ones kept',
      { 'notifications-enabled': { value: 'nope' }, 'max-page-size': { value: '500' }, 'read-only': { value: '' } },
      {},
      [],
      ['notifications-enabled', 'max-page-size', 'read-only'],
    ],
    ['a page size of 0 refused', { 'max-page-size': { value: '0' } }, {}, [], ['max-page-size']],
    ['the same value again: no change', { 'read-only': { value: 'false' } }, {}, [], []],
    ['unknown keys left alone', { 'log-level': { value: 'debug' } }, {}, [], []],
  ])('%s', (_what, items, expected, changed, refused) => {
    const result = applySettings(DEFAULT_SETTINGS, items);
    expect(result.next).toEqual({ ...DEFAULT_SETTINGS, ...expected });
    expect(result.changed.map((item) => item.key)).toEqual(changed);
    expect(result.refused.map((item) => item.key)).toEqual(refused);
  });
});

describe('delivered events', () => {
  const event = (type: string) => ({ ...taskEvent('task.created', task, 'test', 'evt-1', new Date()), type });

  it('asks for a notification on task.completed and task.due only, saying which', () => {
    expect(classifyDelivery(event('task.completed'))).toMatchObject({
      action: 'handle',
      notify: 'completed',
      id: 'evt-1',
    });
    expect(classifyDelivery(event('task.due'))).toMatchObject({ action: 'handle', notify: 'due' });
    expect(classifyDelivery(event('task.created'))).toMatchObject({ action: 'handle', notify: undefined });
    expect(classifyDelivery(event('task.deleted'))).toMatchObject({ action: 'handle', notify: undefined });
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

describe('what verify and catch-up copy into the new store', () => {
  const task: Task = {
    id: '01a2341e-9191-7b96-bf58-35ba37196a86',
    title: 'load 2.4.10',
    description: '',
    status: 'pending',
    priority: 2,
    created_at: '2026-12-02T00:19:08.305Z',
    updated_at: '2026-12-02T00:19:08.305Z',
  };
  const listed = { page: 7, slot: 40 };
  const live = (version: number, entries: boolean, changed: Partial<Task> = {}): StoredValue => ({
    kind: 'live',
    document: {
      task: { ...task, ...changed },
      version,
      listed: entries ? listed : null,
      byStatus: entries ? { page: 3, slot: 9 } : null,
      generation: 'g1',
    },
  });
  const incoming = { task, version: 1 };

  it('copies a task the new store lacks, or holds an older or different copy of', () => {
    expect(needsCopy(incoming, undefined)).toBe(true);
    expect(needsCopy(incoming, { kind: 'absent' })).toBe(true);
    expect(needsCopy({ task, version: 2 }, live(1, true))).toBe(true);
    expect(needsCopy(incoming, live(1, true, { title: 'another' }))).toBe(true);
  });

  it('leaves a listed copy of the same or a newer version, a tombstone and a later swap’s copy alone', () => {
    expect(needsCopy(incoming, live(1, true))).toBe(false);
    expect(needsCopy(incoming, live(2, true, { status: 'in_progress' }))).toBe(false);
    expect(needsCopy(incoming, { kind: 'buried', version: 2 })).toBe(false);
    expect(needsCopy(incoming, { kind: 'superseded' })).toBe(false);
  });

  it('adopts a mirrored copy without entries even when it is newer than what the copier read', () => {
    // The truth read at version 1, then a status change mirrored version 2 before the mirror was read:
    // skipped as newer, the task was in no listing of the new store after the flip.
    expect(needsCopy(incoming, live(2, false, { status: 'in_progress' }))).toBe(true);
    expect(needsCopy(incoming, live(1, false))).toBe(true);
  });
});
