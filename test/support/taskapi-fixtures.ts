import type { TaskApi } from '../../src/api/resource.ts';
import { parseSpec, type TaskApiSpecInput } from '../../src/api/taskapi.ts';

/** A TaskApi as the operator sees it after the apiserver defaulted it. */
export function taskApiFixture(spec: Partial<TaskApiSpecInput> = {}, name = 'tasks', namespace = 'team-a'): TaskApi {
  return {
    apiVersion: 'taskapi.dev/v1alpha1',
    kind: 'TaskApi',
    metadata: { name, namespace, uid: `uid-${namespace}-${name}`, generation: 1 },
    spec: parseSpec({
      image: 'registry.example/taskapi:1.0.0',
      redis: { host: 'redis.backends:6379', passwordSecretRef: { name: 'redis-auth', key: 'password' } },
      postgresql: { connectionStringSecretRef: { name: 'pg-auth', key: 'connectionString' } },
      ...spec,
    }),
  };
}
