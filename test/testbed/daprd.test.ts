import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { startDaprd, type Daprd } from '../../testbed/harness/daprd.ts';
import { kubectlOk } from '../../testbed/harness/kubectl.ts';
import { freePort } from '../../testbed/harness/ports.ts';
import { waitUntil } from '../../testbed/harness/process.ts';

const testbed = inject('testbed');

/** A resources folder for one daprd, under the test bed's directory so its logs are printed on failure. */
function resourcesFolder(name: string, manifests: object[]): string {
  const parent = join(testbed.dir, 'daprd');
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, `${name}-`));
  writeFileSync(join(dir, 'resources.yaml'), manifests.map((manifest) => stringify(manifest)).join('---\n'));
  return dir;
}

function component(name: string, type: string, metadata: Record<string, string>): object {
  return {
    apiVersion: 'dapr.io/v1alpha1',
    kind: 'Component',
    metadata: { name },
    spec: { type, version: 'v1', metadata: Object.entries(metadata).map(([key, value]) => ({ name: key, value })) },
  };
}

const stateStores = [
  {
    backend: 'redis',
    manifest: () =>
      component('statestore', 'state.redis', {
        redisHost: testbed.redis.address,
        redisPassword: testbed.redis.password,
      }),
  },
  {
    backend: 'postgresql',
    manifest: () =>
      component('statestore', 'state.postgresql', { connectionString: testbed.postgres.connectionString }),
  },
];

describe.each(stateStores)('daprd with state.$backend', ({ backend, manifest }) => {
  let daprd: Daprd;
  beforeAll(async () => {
    const dir = resourcesFolder(`state-${backend}`, [manifest()]);
    daprd = await startDaprd({ appId: `smoke-${backend}`, resourcesPath: dir, logDir: dir });
  });
  afterAll(() => daprd.stop());

  const save = (items: object[]): Promise<Response> =>
    fetch(`${daprd.httpUrl}/v1.0/state/statestore`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(items),
    });

  it('loads the component: the metadata API lists it', async () => {
    const metadata = (await (await fetch(`${daprd.httpUrl}/v1.0/metadata`)).json()) as {
      components: { name: string; type: string }[];
    };
    expect(metadata.components).toContainEqual(
      expect.objectContaining({ name: 'statestore', type: `state.${backend}` }),
    );
  });

  it('saves and reads back a value with an ETag, and refuses a write with a stale ETag', async () => {
    const key = `task-${backend}`;
    expect((await save([{ key, value: { title: 'first' } }])).status).toBe(204);

    const first = await fetch(`${daprd.httpUrl}/v1.0/state/statestore/${key}`);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ title: 'first' });
    const etag = first.headers.get('etag');
    expect(etag).toBeTruthy();

    const update = await save([{ key, value: { title: 'second' }, etag, options: { concurrency: 'first-write' } }]);
    expect(update.status).toBe(204);

    // The ETag read before the update is now stale: the store must refuse, not overwrite.
    const stale = await save([{ key, value: { title: 'lost update' }, etag, options: { concurrency: 'first-write' } }]);
    expect(stale.status).toBe(409);

    const final = await fetch(`${daprd.httpUrl}/v1.0/state/statestore/${key}`);
    expect(await final.json()).toEqual({ title: 'second' });
    expect(final.headers.get('etag')).not.toBe(etag);
  });
});

describe('daprd with pubsub.redis and secretstores.kubernetes', () => {
  let daprd: Daprd;
  let app: Server;
  const received: { type: string; topic: string; data: unknown }[] = [];

  beforeAll(async () => {
    const appPort = await freePort();
    app = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (request.method === 'POST' && request.url === '/events') {
          received.push(JSON.parse(body) as (typeof received)[number]);
          response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'SUCCESS' }));
        } else {
          response.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));

    const namespace = 'smoke-secrets';
    await kubectlOk(testbed.kubeconfig, ['create', 'namespace', namespace]);
    await kubectlOk(testbed.kubeconfig, [
      'create',
      'secret',
      'generic',
      'api-token',
      '-n',
      namespace,
      '--from-literal=token=s3cr3t-value',
    ]);
    const dir = resourcesFolder('messaging', [
      component('pubsub', 'pubsub.redis', { redisHost: testbed.redis.address, redisPassword: testbed.redis.password }),
      component('kubernetes', 'secretstores.kubernetes', {
        kubeconfigPath: testbed.kubeconfig,
        defaultNamespace: namespace,
      }),
      {
        apiVersion: 'dapr.io/v2alpha1',
        kind: 'Subscription',
        metadata: { name: 'smoke' },
        spec: { pubsubname: 'pubsub', topic: 'smoke', routes: { default: '/events' } },
      },
    ]);
    daprd = await startDaprd({ appId: 'smoke-messaging', resourcesPath: dir, logDir: dir, appPort });
  });
  afterAll(async () => {
    await daprd.stop();
    await new Promise((resolve) => app.close(resolve));
  });

  it('delivers a published event to the subscriber route as a CloudEvent', async () => {
    // The subscription starts once daprd has reached the app; publish until it is delivered.
    await waitUntil(
      async () => {
        const published = await fetch(`${daprd.httpUrl}/v1.0/publish/pubsub/smoke`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: 'task-1' }),
        });
        expect(published.status).toBe(204);
        await new Promise((resolve) => setTimeout(resolve, 500));
        return received.length > 0;
      },
      { what: 'the event to reach /events', timeoutMs: 30_000, intervalMs: 0 },
    );
    expect(received[0]).toMatchObject({ topic: 'smoke', data: { id: 'task-1' } });
  });

  it("reads a Secret from the test bed's apiserver", async () => {
    const response = await fetch(`${daprd.httpUrl}/v1.0/secrets/kubernetes/api-token`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ token: 's3cr3t-value' });
  });
});
