/**
 * The real node of the test bed, used the way a user uses a cluster: kubectl,
 * Deployments, Services, probes, logs, exec, port-forward, and Dapr's sidecar
 * injected by its own control plane. Every image here was built locally.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAPR_NAMESPACE, DAPR_RELEASE } from '../../../testbed/harness/addons.ts';
import { installBackends } from '../../../testbed/harness/install.ts';
import { waitUntil } from '../../../testbed/harness/process.ts';
import {
  apply,
  cluster,
  createNamespace,
  deployment,
  k,
  kTry,
  nodeIn,
  podFields,
  podNames,
  portForward,
  runningContainersOf,
} from '../../support/cluster.ts';

const { nodeName, images } = cluster();

/** A web server on 8080: `/ready` for the probe, `/exit` ends the process, anything else answers the pod's name. */
const webServer = `
const http = require('node:http');
process.on('SIGTERM', () => process.exit(0));
http.createServer((req, res) => {
  if (req.url === '/ready') return res.end('ready');
  if (req.url === '/exit') { res.end('bye'); setTimeout(() => process.exit(3), 50); return; }
  res.end(require('node:os').hostname());
}).listen(8080, () => console.log('web: listening on 8080'));
`;
/** Blocks until stopped: a pod to exec into. */
const idle = `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1 << 30);`;

const nodeContainer = (name: string, script: string): object => ({
  name,
  image: images.nodeBase.name,
  imagePullPolicy: 'Never',
  command: ['node', '-e', script],
  securityContext: {
    runAsNonRoot: true,
    runAsUser: 1000,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  },
});

const podOnNode = (spec: object): object => ({ terminationGracePeriodSeconds: 2, ...spec });

describe('the real node', () => {
  it("is a Ready, schedulable Node on containerd 2.x whose Lease kubelet renews, beside kwok's tainted one", async () => {
    const node = JSON.parse(await k(['get', 'node', nodeName, '-o', 'json'])) as {
      metadata: { annotations?: Record<string, string> };
      spec: { unschedulable?: boolean; taints?: unknown[] };
      status: { nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string } };
    };
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/2\./);
    expect(node.status.nodeInfo.kubeletVersion).toMatch(/^v1\.36\./);
    expect(node.spec.unschedulable).toBeFalsy();
    expect(node.spec.taints ?? []).toEqual([]);
    // kwok manages only nodes carrying its annotation.
    expect(Object.keys(node.metadata.annotations ?? {})).not.toContain('kwok.x-k8s.io/node');
    const renewTime = () =>
      k(['get', 'lease', nodeName, '-n', 'kube-node-lease', '-o', 'jsonpath={.spec.holderIdentity} {.spec.renewTime}']);
    const first = await renewTime();
    expect(first.split(' ')[0]).toBe(nodeName);
    await waitUntil(async () => (await renewTime()) !== first, {
      what: 'kubelet to renew its Lease',
      timeoutMs: 30_000,
    });
    const kwokTaints = await k(['get', 'node', 'kwok-node-0', '-o', 'jsonpath={.spec.taints[*].key}']);
    expect(kwokTaints).toBe('kwok.x-k8s.io/node');
  });
});

describe('a Deployment of the Node base image on the real node', () => {
  const namespace = 'node-web';
  beforeAll(async () => {
    await createNamespace(namespace);
    await apply([
      deployment(
        namespace,
        'web',
        2,
        podOnNode({
          containers: [
            {
              ...nodeContainer('web', webServer),
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1 },
            },
          ],
        }),
      ),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client', namespace },
        spec: podOnNode({ containers: [nodeContainer('client', idle)] }),
      },
    ]);
    await k(['rollout', 'status', 'deployment/web', '-n', namespace, '--timeout=120s']);
    await k(['wait', '--for=condition=Ready', 'pod/client', '-n', namespace, '--timeout=120s']);
  });
  afterAll(() => kTry(['delete', 'namespace', namespace, '--wait=false']));

  it('runs its pods on the real node, Ready by their readiness probe, with logs and exec', async () => {
    const pods = await podNames(namespace, 'app=web');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      const state = await podFields(
        namespace,
        pod,
        '{.spec.nodeName} {.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.podIP}',
      );
      const [onNode, phase, ready, podIp] = state.split(' ');
      expect([onNode, phase, ready]).toEqual([nodeName, 'Running', 'True']);
      // An address of the node's pod range, from the CNI bridge.
      expect(podIp).toMatch(new RegExp(`^10\\.251\\.${cluster().network.slot}\\.`));
      expect(await k(['logs', '-n', namespace, pod])).toContain('web: listening on 8080');
      expect(
        (await k(['exec', '-n', namespace, pod, '--', 'node', '-p', 'require("node:os").hostname()'])).trim(),
      ).toBe(pod);
    }
  });

  it('routes the Service by its DNS name from another pod (CoreDNS, kube-proxy) to both pods', async () => {
    const answers = await nodeIn(
      namespace,
      'client',
      // A new connection each time (no keep-alive): kube-proxy picks a pod per connection.
      `const http = require('node:http');
      const get = () => new Promise((resolve, reject) => {
        http.get('http://web.${namespace}.svc.cluster.local/', { agent: false, timeout: 5000 }, (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve(body));
        }).on('error', reject);
      });
      (async () => {
        const seen = new Set();
        for (let i = 0; i < 60 && seen.size < 2; i++) seen.add(await get());
        console.log([...seen].sort().join(' '));
      })().catch((error) => { console.error(error); process.exit(1); });`,
    );
    expect(answers.trim().split(' ')).toEqual((await podNames(namespace, 'app=web')).sort());
  });

  it('is reached from the host through kubectl port-forward', async () => {
    const forward = await portForward(namespace, 'service/web', 80);
    try {
      const answer = await (await fetch(forward.url)).text();
      expect(await podNames(namespace, 'app=web')).toContain(answer);
    } finally {
      await forward.stop();
    }
  });

  it('restarts a container that exits', async () => {
    const [pod = ''] = await podNames(namespace, 'app=web');
    await nodeIn(namespace, pod, `fetch('http://127.0.0.1:8080/exit').then((res) => res.text()).then(console.log)`);
    await waitUntil(
      async () =>
        (
          await podFields(
            namespace,
            pod,
            '{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.conditions[?(@.type=="Ready")].status}',
          )
        ).trim() === '1 3 True',
      { what: `${pod} to be restarted after its process exited with 3`, timeoutMs: 60_000 },
    );
    // Right after the restart the kubelet may not find the previous container's log yet (seen once in CI:
    // "unable to retrieve container logs for containerd://..."): asked again for a few seconds.
    let previous = '';
    await waitUntil(
      async () => (previous = await k(['logs', '-n', namespace, pod, '--previous'])).includes('web: listening on 8080'),
      { what: `the log of ${pod}'s exited container`, timeoutMs: 20_000 },
    ).catch(() => undefined);
    expect(previous).toContain('web: listening on 8080');
  });

  it('stops the containers when the Deployment is deleted', async () => {
    // Two web pods and the client, each a sandbox and a container.
    expect((await runningContainersOf(namespace)).length).toBe(6);
    await k(['delete', 'deployment', 'web', '-n', namespace, '--wait=true']);
    await k(['delete', 'pod', 'client', '-n', namespace, '--wait=true']);
    await k(['wait', '--for=delete', 'pods', '-l', 'app=web', '-n', namespace, '--timeout=60s']);
    // kubelet stops them at once; its garbage collector removes their records within a minute.
    await waitUntil(async () => (await runningContainersOf(namespace)).length === 0, {
      what: `the containers of ${namespace} to stop`,
      timeoutMs: 30_000,
    });
  });
});

describe("Dapr's control plane on the real node", () => {
  const namespace = 'node-dapr';
  beforeAll(async () => {
    await installBackends(cluster().kubeconfig, cluster().dir, {
      redis: images.redis.name,
      postgres: images.postgres.name,
    });
    await createNamespace(namespace);
  });
  afterAll(() => kTry(['delete', 'namespace', namespace, '--wait=false']));

  it('is Ready: every pod of the release', async () => {
    const pods = JSON.parse(
      await k(['get', 'pods', '-n', DAPR_NAMESPACE, '-l', `app.kubernetes.io/name=${DAPR_RELEASE}`, '-o', 'json']),
    ) as {
      items: {
        metadata: { name: string; labels: Record<string, string> };
        status: { conditions?: { type: string; status: string }[] };
      }[];
    };
    const components = pods.items.map((pod) => pod.metadata.labels['app']);
    expect([...new Set(components)].sort()).toEqual([
      'dapr-operator',
      'dapr-placement-server',
      'dapr-scheduler-server',
      'dapr-sentry',
      'dapr-sidecar-injector',
    ]);
    for (const pod of pods.items) {
      expect(pod.status.conditions?.find((condition) => condition.type === 'Ready')?.status, pod.metadata.name).toBe(
        'True',
      );
    }
  });

  it('injects daprd into an annotated pod, which runs 2/2 and serves a state Component applied with kubectl', async () => {
    await apply([
      {
        apiVersion: 'dapr.io/v1alpha1',
        kind: 'Component',
        metadata: { name: 'statestore', namespace },
        spec: {
          type: 'state.redis',
          version: 'v1',
          metadata: [
            { name: 'redisHost', value: 'redis.taskapi-backends.svc.cluster.local:6379' },
            { name: 'redisPassword', value: 'dev-redis-password' },
          ],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'smoke',
          namespace,
          annotations: { 'dapr.io/enabled': 'true', 'dapr.io/app-id': 'smoke' },
        },
        spec: podOnNode({ containers: [nodeContainer('app', idle)] }),
      },
    ]);
    await k(['wait', '--for=condition=Ready', 'pod/smoke', '-n', namespace, '--timeout=180s']);
    const containers = await k([
      'get',
      'pod',
      'smoke',
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.containers[*].name} {.status.containerStatuses[*].ready}',
    ]);
    expect(containers).toBe('app daprd true true');
    const daprd = await k(['logs', '-n', namespace, 'smoke', '-c', 'daprd']);
    expect(daprd).toContain('dapr initialized');
    // mTLS on: its workload certificate came from sentry, its Components from dapr-operator.
    expect(daprd).toContain('Security is initialized successfully');
    expect(daprd).toMatch(/Component loaded: statestore \(state\.redis\/v1\)/);

    const read = await nodeIn(
      namespace,
      'smoke',
      `(async () => {
        const base = 'http://127.0.0.1:' + process.env.DAPR_HTTP_PORT + '/v1.0/state/statestore';
        const saved = await fetch(base, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify([{ key: 'greeting', value: { text: 'hello from the real node' } }]),
        });
        if (saved.status !== 204) throw new Error('save answered ' + saved.status + ': ' + (await saved.text()));
        console.log(await (await fetch(base + '/greeting')).text());
      })().catch((error) => { console.error(error); process.exit(1); });`,
      'app',
    );
    expect(JSON.parse(read)).toEqual({ text: 'hello from the real node' });
  });
});

describe("the image built from the project's Dockerfile", () => {
  const namespace = 'node-image';
  afterAll(() => kTry(['delete', 'namespace', namespace, '--wait=false']));

  it('starts the task service entry point in the cluster, which answers its health route', async () => {
    await createNamespace(namespace);
    await apply([
      deployment(
        namespace,
        'task-service',
        1,
        podOnNode({
          containers: [
            {
              name: 'service',
              image: images.app.name,
              imagePullPolicy: 'Never',
              args: ['dist/service/server.js'],
              env: [
                { name: 'APP_PORT', value: '3000' },
                { name: 'STATE_STORE_NAME', value: 'statestore' },
                { name: 'PUBSUB_NAME', value: 'pubsub' },
              ],
              readinessProbe: { httpGet: { path: '/healthz', port: 3000 }, periodSeconds: 1 },
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
            },
          ],
        }),
      ),
    ]);
    await k(['rollout', 'status', 'deployment/task-service', '-n', namespace, '--timeout=120s']);
    const [pod = ''] = await podNames(namespace, 'app=task-service');
    const health = await nodeIn(
      namespace,
      pod,
      `fetch('http://127.0.0.1:3000/healthz').then(async (res) => console.log(res.status, await res.text()))`,
    );
    expect(health.trim()).toBe('200 {"status":"ok"}');
  });
});
