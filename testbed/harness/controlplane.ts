/**
 * A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and kwok with one fake Node. On loopback alone by default; with
 * `nodeNetwork`, kube-apiserver serves on the host end of a real node's veth so
 * that kubelet and pods reach it (see node.ts).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify, parseAllDocuments } from 'yaml';
import { kubectlOk } from './kubectl.ts';
import { freePort } from './ports.ts';
import { goBinary, goModuleDir, versions } from './prerequisites.ts';
import { describeLogs, ManagedProcess, waitUntil } from './process.ts';

export interface ControlPlane {
  /** Path of a kubeconfig with cluster-admin rights. */
  kubeconfig: string;
  /** https://<address>:<port>: 127.0.0.1, or the host end of a real node's veth. */
  server: string;
  /** The API server's (self-signed) serving certificate, for clients to trust. */
  caFile: string;
  /** Name of the kwok Node pods are scheduled to. */
  nodeName: string;
  /** Temporary directory holding data, certificates and logs. */
  dir: string;
  processes: ManagedProcess[];
  /** Last lines of every component's log. */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

export const KWOK_NODE_NAME = 'kwok-node-0';

/** Service IPs; they exist only inside a real node's network namespace (kube-proxy's rules). */
export const SERVICE_CIDR = '10.96.0.0/16';
/** Addresses of the pods kwok pretends to run (see kwokNode). */
export const KWOK_POD_CIDR = '127.0.100.0/24';
/** The cluster DNS Service's IP (CoreDNS, on a real node). */
export const CLUSTER_DNS_IP = '10.96.0.10';

/** kwok manages only Nodes carrying this annotation; pods on other nodes are left alone. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

/** A static bearer token of the API server's token file: who a node component is. */
export interface StaticToken {
  token: string;
  user: string;
  groups: string[];
}

export interface ControlPlaneOptions {
  /**
   * A real node will join: kube-apiserver binds and advertises `address` (the host
   * end of the node's veth, so the `kubernetes` Service leads pods to it), accepts
   * the node components' tokens, authorizes kubelets with the Node authorizer,
   * presents `kubeletClient` to kubelets (logs, exec, port-forward) and reaches
   * webhook pods through their endpoints. kwok's node is tainted so that only pods
   * that ask for it land there.
   */
  nodeNetwork?: {
    address: string;
    tokens: StaticToken[];
    kubeletClient: { certFile: string; keyFile: string };
  };
  /** Install Dapr's CRDs from its chart (default true). Off when Dapr's own chart installs them. */
  daprCrds?: boolean;
}

/** Taint on kwok's node in a cluster with a real one: pods tolerate it to ask for kwok. */
export const KWOK_NODE_TAINT = { key: KWOK_NODE_ANNOTATION, value: 'fake', effect: 'NoSchedule' } as const;

export async function startControlPlane(dir: string, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  mkdirSync(dir, { recursive: true });
  const processes: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    // Reverse start order: clients first, etcd last. kube-apiserver's graceful
    // termination hangs on deleting its identity Lease until the grace runs out
    // (10 s on every stop); nothing of a stopped control plane is used again.
    for (const child of [...processes].reverse()) await child.stop(child.name === 'kube-apiserver' ? 1_000 : undefined);
  };
  try {
    return await start(dir, processes, stop, options);
  } catch (error) {
    await stop();
    throw error;
  }
}

async function start(
  dir: string,
  processes: ManagedProcess[],
  stop: () => Promise<void>,
  options: ControlPlaneOptions,
): Promise<ControlPlane> {
  const { nodeNetwork } = options;
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const launch = (name: string, command: string, args: string[]): ManagedProcess => {
    const child = ManagedProcess.start({ name, command, args, logDir });
    processes.push(child);
    return child;
  };

  // etcd
  const etcdPort = await freePort();
  const etcdPeerPort = await freePort();
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = launch('etcd', goBinary('etcd', 'etcd'), [
    '--name=testbed',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=testbed=http://127.0.0.1:${etcdPeerPort}`,
    // A throwaway store: durability buys nothing and fsync costs seconds.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitUntil(async () => (await fetch(`${etcdUrl}/health`)).ok, {
    what: 'etcd to become healthy',
    timeoutMs: 30_000,
    watch: [etcd],
  });

  // Credentials: one admin token, and the service-account signing key pair.
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true });
  const token = randomBytes(24).toString('hex');
  const tokenFile = join(pki, 'tokens.csv');
  const tokens: StaticToken[] = [
    { token, user: 'testbed-admin', groups: ['system:masters'] },
    ...(nodeNetwork?.tokens ?? []),
  ];
  writeFileSync(
    tokenFile,
    tokens.map((entry) => `${entry.token},${entry.user},${entry.user},"${entry.groups.join(',')}"\n`).join(''),
    { mode: 0o600 },
  );
  const serviceAccountKey = join(pki, 'sa.key');
  const serviceAccountPub = join(pki, 'sa.pub');
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(serviceAccountKey, keys.privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  writeFileSync(serviceAccountPub, keys.publicKey.export({ type: 'spki', format: 'pem' }));

  // kube-apiserver
  const apiPort = await freePort();
  const address = nodeNetwork?.address ?? '127.0.0.1';
  const server = `https://${address}:${apiPort}`;
  const apiCertDir = join(pki, 'apiserver');
  const apiserver = launch('kube-apiserver', goBinary('kubernetes', 'kube-apiserver'), [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--secure-port=${apiPort}`,
    // No serving certificate given: the apiserver writes a self-signed one here
    // (for its address, the `kubernetes` Service's IP and DNS names), which the
    // kubeconfig then trusts.
    `--cert-dir=${apiCertDir}`,
    `--token-auth-file=${tokenFile}`,
    ...(nodeNetwork
      ? [
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=NodeRestriction',
          `--kubelet-client-certificate=${nodeNetwork.kubeletClient.certFile}`,
          `--kubelet-client-key=${nodeNetwork.kubeletClient.keyFile}`,
          '--kubelet-preferred-address-types=InternalIP',
          // Webhooks (Dapr's injector) and aggregated APIs are called at their pod's
          // address, which the host routes to the node; Service IPs exist only there.
          '--enable-aggregator-routing=true',
        ]
      : [
          '--authorization-mode=RBAC',
          // No kubelet and no node network: nothing could reach the `kubernetes` Service.
          '--endpoint-reconciler-type=none',
        ]),
    '--anonymous-auth=false',
    `--service-account-key-file=${serviceAccountPub}`,
    `--service-account-signing-key-file=${serviceAccountKey}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
  ]);
  const caFile = join(apiCertDir, 'apiserver.crt');
  await waitUntil(async () => existsSync(caFile) && (await httpsGet(`${server}/readyz`, caFile, token)) === 200, {
    what: 'kube-apiserver /readyz',
    timeoutMs: 60_000,
    watch: [etcd, apiserver],
  });

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, renderKubeconfig(server, readFileSync(caFile), token), { mode: 0o600 });

  // kube-controller-manager: garbage collector, deployment/replicaset, serviceaccount, node lifecycle, ...
  const controllerManager = launch('kube-controller-manager', goBinary('kubernetes', 'kube-controller-manager'), [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${await freePort()}`,
    `--cert-dir=${join(pki, 'controller-manager')}`,
    `--service-account-private-key-file=${serviceAccountKey}`,
    `--root-ca-file=${caFile}`,
    '--leader-elect=false',
    // The test bed has one user; controllers share its credentials.
    '--use-service-account-credentials=false',
    // Tests create and delete many objects; don't make them queue behind client-side throttling.
    '--kube-api-qps=500',
    '--kube-api-burst=1000',
    '--concurrent-deployment-syncs=10',
    '--concurrent-replicaset-syncs=10',
    '--concurrent-gc-syncs=40',
    '--v=1',
  ]);

  const scheduler = launch('kube-scheduler', goBinary('kubernetes', 'kube-scheduler'), [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${await freePort()}`,
    '--leader-elect=false',
    '--kube-api-qps=500',
    '--kube-api-burst=1000',
    '--v=1',
  ]);

  const kwok = launch('kwok', goBinary('kwok', 'kwok'), [
    `--kubeconfig=${kubeconfig}`,
    '--manage-all-nodes=false',
    `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
    `--server-address=127.0.0.1:${await freePort()}`,
    '--node-lease-duration-seconds=40',
    ...kwokStageFiles().map((file) => `--config=${file}`),
  ]);

  const all = [etcd, apiserver, controllerManager, scheduler, kwok];
  await kubectlOk(kubeconfig, ['apply', '-f', '-'], stringify(kwokNode(KWOK_NODE_NAME, nodeNetwork !== undefined)));
  await waitUntil(
    async () =>
      (
        await kubectlOk(kubeconfig, [
          'get',
          'node',
          KWOK_NODE_NAME,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ])
      ).trim() === 'True',
    { what: `kwok to mark node ${KWOK_NODE_NAME} Ready`, timeoutMs: 30_000, watch: all },
  );
  // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  await waitUntil(
    async () =>
      (await kubectlOk(kubeconfig, ['get', 'serviceaccounts', '-n', 'default', '-o', 'name'])).includes('default'),
    { what: 'the default ServiceAccount', timeoutMs: 30_000, watch: all },
  );
  if (options.daprCrds ?? true) await installDaprCrds(kubeconfig);

  return {
    kubeconfig,
    server,
    caFile,
    nodeName: KWOK_NODE_NAME,
    dir,
    processes,
    logs: (lines?: number) => describeLogs(processes, lines),
    stop,
  };
}

/** As JSON, which is YAML too: the operator reads it without loading a YAML parser. */
export function renderKubeconfig(server: string, ca: Buffer, token: string, user = 'testbed-admin'): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'testbed', cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'testbed', context: { cluster: 'testbed', user, namespace: 'default' } }],
      'current-context': 'testbed',
    },
    null,
    2,
  );
}

function httpsGet(url: string, caFile: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(caFile), headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * kwok's own stage files, from its module: nodes become Ready and keep a lease,
 * pods become Ready, complete, and go away when deleted (there is no kubelet to
 * finish a graceful deletion).
 */
function kwokStageFiles(): string[] {
  const stages = join(goModuleDir('sigs.k8s.io/kwok', versions.KWOK_VERSION), 'kustomize', 'stage');
  return [
    join(stages, 'node', 'fast', 'node-initialize.yaml'),
    join(stages, 'node', 'heartbeat-with-lease', 'node-heartbeat-with-lease.yaml'),
    join(stages, 'pod', 'fast', 'pod-ready.yaml'),
    join(stages, 'pod', 'fast', 'pod-complete.yaml'),
    join(stages, 'pod', 'fast', 'pod-delete.yaml'),
  ];
}

function kwokNode(name: string, tainted: boolean): object {
  const resources = { cpu: '64', memory: '256Gi', pods: '10000' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
      },
    },
    spec: {
      // kwok gives its pods addresses from here. On loopback: nothing runs behind them, and anything that tries
      // one (the operator reaching a task pod during a swap) is refused at once, never sent off this machine.
      podCIDR: KWOK_POD_CIDR,
      podCIDRs: [KWOK_POD_CIDR],
      ...(tainted ? { taints: [KWOK_NODE_TAINT] } : {}),
    },
    status: { allocatable: resources, capacity: resources },
  };
}

/**
 * Dapr's CRDs, read from the dapr module's charts/dapr/crds/. The Subscription
 * CRD asks for Dapr's conversion webhook, which does not run here: it is served
 * as its storage version v2alpha1 only, with no conversion.
 */
export function daprCrds(): object[] {
  const crdDir = join(goModuleDir('github.com/dapr/dapr', versions.DAPR_VERSION), 'charts', 'dapr', 'crds');
  const crds: object[] = [];
  for (const file of readdirSync(crdDir)
    .filter((name) => name.endsWith('.yaml'))
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))) {
      const crd = doc.toJS() as CustomResourceDefinition | null;
      if (!crd?.spec) continue;
      if (crd.spec.conversion?.strategy === 'Webhook') {
        crd.spec.conversion = { strategy: 'None' };
        for (const version of crd.spec.versions) version.served = version.storage;
      }
      crds.push(crd);
    }
  }
  return crds;
}

interface CustomResourceDefinition {
  metadata: { name: string };
  spec: {
    conversion?: { strategy: string };
    versions: { name: string; served: boolean; storage: boolean }[];
  };
}

async function installDaprCrds(kubeconfig: string): Promise<void> {
  const manifests = daprCrds()
    .map((crd) => stringify(crd))
    .join('---\n');
  // Server-side: the CRDs are too large for client-side apply's annotation.
  await kubectlOk(kubeconfig, ['apply', '--server-side', '--field-manager=testbed', '-f', '-'], manifests);
  await kubectlOk(kubeconfig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}
