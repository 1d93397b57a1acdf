import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/api/taskapi.ts';

describe('the TaskApi spec schema', () => {
  it('fills in every default a user may leave out', () => {
    const spec = parseSpec({ image: 'taskapi:1', redis: { host: 'redis:6379' } });
    expect(spec).toEqual({
      image: 'taskapi:1',
      replicas: 1,
      appPort: 3000,
      stateBackend: 'redis',
      redis: { host: 'redis:6379', enableTLS: false },
      pubsub: {},
      dapr: { logLevel: 'info', enableApiLogging: false },
    });
  });

  it('names the field that is wrong', () => {
    expect(() => parseSpec({ image: 'taskapi:1', replicas: -1, redis: { host: 'redis:6379' } })).toThrow(/replicas/);
    expect(() =>
      parseSpec({
        image: 'taskapi:1',
        redis: { host: 'redis:6379', passwordSecretRef: { name: 'Bad_Name', key: 'k' } },
      }),
    ).toThrow(/passwordSecretRef[\s\S]*name/);
  });
});
