/**
 * What a cluster with a real node runs besides the node: CoreDNS for
 * `cluster.local` (Kubernetes' own addon manifest, cluster/addons/dns/coredns,
 * trimmed to this test bed), and Dapr's control plane installed with Dapr's own
 * Helm chart from the pinned dapr module, as a user installs it.
 */
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_DNS_IP } from './controlplane.ts';
import { applyManifests, helmOk, kubectlOk } from './kubectl.ts';
import { goModuleDir, versions } from './prerequisites.ts';

export const DAPR_NAMESPACE = 'dapr-system';
export const DAPR_RELEASE = 'dapr';

/**
 * CoreDNS answers for the cluster only: no `forward`, so no query leaves the
 * test bed. It listens on 1053 (no privileged port, so it runs as non-root
 * under the restricted profile); the kube-dns Service maps port 53 to it.
 */
export function coreDnsManifests(image: string): object[] {
  const labels = { 'k8s-app': 'kube-dns' };
  const corefile = `.:1053 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loop
    reload
}
`;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'coredns', namespace: 'kube-system' },
      data: { Corefile: corefile },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: 'kube-system', labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            priorityClassName: 'system-cluster-critical',
            dnsPolicy: 'Default',
            securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'coredns',
                image,
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 1053, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 1053, protocol: 'TCP' },
                ],
                livenessProbe: { httpGet: { path: '/health', port: 8080 }, periodSeconds: 10 },
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        selector: labels,
        ports: [
          { name: 'dns', port: 53, targetPort: 1053, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 1053, protocol: 'TCP' },
        ],
      },
    },
  ];
}

export async function installCoreDns(kubeconfig: string, image: string): Promise<void> {
  await applyManifests(kubeconfig, coreDnsManifests(image));
  await kubectlOk(kubeconfig, ['rollout', 'status', 'deployment/coredns', '-n', 'kube-system', '--timeout=120s']);
}

/** Dapr's chart, with its CRDs, from the pinned dapr module in the Go module cache. */
export const daprChartDir = (): string =>
  join(goModuleDir('github.com/dapr/dapr', versions.DAPR_VERSION), 'charts', 'dapr');

/** The scheduler's StatefulSet in Dapr's chart (1.18): three replicas, each an embedded etcd member. */
const SCHEDULER_REPLICAS = 3;
/** The user the chart's pods run as in the one Dapr image built here (images.ts). */
const DAPR_USER = 65532;
export const SCHEDULER_STORAGE_CLASS = 'taskapi-testbed-local';

/**
 * Storage for the scheduler's etcd members, so jobs outlive a restart of every
 * scheduler pod, as on a cluster with a volume provisioner. This test bed has
 * none: a StorageClass without a provisioner and one PersistentVolume per
 * replica, a directory under the cluster's own directory (hostPath: the node's
 * mount namespace sees the machine's /tmp), each bound ahead to the claim the
 * StatefulSet makes for its pod. Removed with the cluster's directory.
 */
export function schedulerStorageManifests(dataDir: string): object[] {
  return [
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: SCHEDULER_STORAGE_CLASS },
      provisioner: 'kubernetes.io/no-provisioner',
      reclaimPolicy: 'Retain',
      volumeBindingMode: 'Immediate',
    },
    ...Array.from({ length: SCHEDULER_REPLICAS }, (_, ordinal) => ({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `dapr-scheduler-data-${ordinal}` },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: SCHEDULER_STORAGE_CLASS,
        hostPath: { path: join(dataDir, String(ordinal)), type: 'Directory' },
        claimRef: {
          namespace: DAPR_NAMESPACE,
          name: `dapr-scheduler-data-dir-dapr-scheduler-server-${ordinal}`,
        },
      },
    })),
  ];
}

/**
 * `helm install` of Dapr's chart with the images built here (registry and tag
 * of the one Dapr image, never pulled), for one node: the scheduler's etcd on
 * the volumes above (`schedulerDataDir`), placement's Raft log in memory
 * (actors are not used here), and the injector's webhook failing closed, so a
 * pod never starts without its sidecar unnoticed. Failing closed with the
 * chart's default (no selector) would make every pod's creation wait for the
 * injector, Dapr's own and CoreDNS's included, so the webhook leaves those two
 * namespaces out.
 */
export async function installDapr(
  kubeconfig: string,
  helmHome: string,
  image: { registry: string; tag: string },
  schedulerDataDir: string,
): Promise<void> {
  for (let ordinal = 0; ordinal < SCHEDULER_REPLICAS; ordinal++) {
    const dir = join(schedulerDataDir, String(ordinal));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, DAPR_USER, DAPR_USER);
  }
  await applyManifests(kubeconfig, schedulerStorageManifests(schedulerDataDir));
  await helmOk(kubeconfig, helmHome, [
    'install',
    DAPR_RELEASE,
    daprChartDir(),
    '--namespace',
    DAPR_NAMESPACE,
    '--create-namespace',
    '--set',
    `global.registry=${image.registry}`,
    '--set',
    `global.tag=${image.tag}`,
    '--set',
    'global.imagePullPolicy=Never',
    '--set',
    'dapr_sidecar_injector.sidecarImagePullPolicy=Never',
    '--set',
    'dapr_sidecar_injector.webhookFailurePolicy=Fail',
    // daprd drops every capability: pods with a sidecar then pass the restricted Pod Security Standard.
    '--set',
    'dapr_sidecar_injector.sidecarDropALLCapabilities=true',
    '--set-json',
    `dapr_sidecar_injector.namespaceSelector=${JSON.stringify({
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [DAPR_NAMESPACE, 'kube-system'] },
      ],
    })}`,
    '--set',
    `dapr_scheduler.cluster.storageClassName=${SCHEDULER_STORAGE_CLASS}`,
    '--set',
    'dapr_scheduler.cluster.storageSize=1Gi',
    // The chart gives a scheduler member 180 s before its first liveness probe
    // and 5 x 10 s after: a member that hangs after every member restarted at once
    // ('Failed to get etcd cron client: context canceled', one full restart in
    // five) held the sidecars that need it for four minutes. Here it is
    // restarted within a minute; each member starts in seconds on this node.
    '--set',
    'dapr_scheduler.livenessProbe.initialDelaySeconds=30',
    '--set',
    'dapr_scheduler.livenessProbe.periodSeconds=5',
    '--set',
    'dapr_scheduler.livenessProbe.failureThreshold=4',
    '--set',
    'dapr_placement.cluster.forceInMemoryLog=true',
    '--wait',
    '--timeout=5m',
  ]);
}
