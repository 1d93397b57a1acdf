import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Announcer } from '../../src/service/announcer.ts';
import type { EventPublisher } from '../../src/service/ports.ts';
import type { Task } from '../../src/service/schemas/task.ts';

const task = (id: string): Task => ({
  id,
  title: id,
  description: '',
  status: 'pending',
  priority: 1,
  created_at: '2026-12-02T00:00:00.000Z',
  updated_at: '2026-12-02T00:00:00.000Z',
});

/** A publisher whose publishes finish when the test says so, recording what it was asked in order. */
function heldPublisher() {
  const started: string[] = [];
  const finish: (() => void)[] = [];
  const publisher: EventPublisher = {
    publish: (type, published) => {
      started.push(`${type} ${published.id}`);
      return new Promise<void>((resolve) => finish.push(resolve));
    },
  };
  return {
    publisher,
    started,
    release: () => {
      finish.splice(0).forEach((resolve) => {
        resolve();
      });
    },
  };
}

const log = pino({ level: 'silent' });
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('the Announcer (events sent after the answer)', () => {
  it('answers before the publish, and sends one task’s events in the order they happened', async () => {
    const { publisher, started, release } = heldPublisher();
    const announcer = new Announcer(publisher);
    await announcer.announce('task.created', task('a'), log);
    await announcer.announce('task.completed', task('a'), log);
    await announcer.announce('task.created', task('b'), log);
    await tick();
    // b does not wait for a; a's completed waits for a's created.
    expect(started).toEqual(['task.created a', 'task.created b']);
    release();
    await tick();
    expect(started).toEqual(['task.created a', 'task.created b', 'task.completed a']);
    expect(announcer.waiting).toBe(1);
    release();
    await announcer.drain();
    expect(announcer.waiting).toBe(0);
  });

  it('makes a writer wait for its own publish once `limit` events wait', async () => {
    const { publisher, release } = heldPublisher();
    const announcer = new Announcer(publisher, 2);
    await announcer.announce('task.created', task('a'), log);
    await announcer.announce('task.created', task('b'), log);
    let third = false;
    void announcer.announce('task.created', task('c'), log).then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    release();
    await tick();
    expect(third).toBe(true);
  });

  it('logs a failed publish and goes on with the next', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
    const sent: string[] = [];
    const announcer = new Announcer({
      publish: (type, published) => {
        if (type === 'task.created') return Promise.reject(new Error('pub/sub down'));
        sent.push(`${type} ${published.id}`);
        return Promise.resolve();
      },
    });
    await announcer.announce('task.created', task('a'), logger);
    await announcer.announce('task.deleted', task('a'), logger);
    await announcer.drain();
    expect(sent).toEqual(['task.deleted a']);
    expect(lines.join('')).toContain('"taskId":"a"');
  });
});
