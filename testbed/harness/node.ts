/**
 * A real Kubernetes node: containerd (Debian's runc under it), kubelet and
 * kube-proxy in iptables mode, inside the namespaces of node-namespace.ts, pods
 * on a CNI bridge. It registers with the test bed's API server as a Node whose
 * container runtime reads containerd://2.x, the way a kind node does, but with
 * no Docker: the images come from images.ts and are imported with ctr.
 *
 * Settings this machine needs (../shared/notes/real-node.md): cgroup v1 is
 * allowed (`failCgroupV1: false`) with the cgroupfs driver; root here lacks
 * CAP_SYS_RESOURCE, so neither containerd (`restrict_oom_score_adj`) nor kubelet
 * (`oomScoreAdj: 0`) may lower an OOM score; eviction and image GC are off (a
 * test bed's disk is the machine's). kubelet writes six host-wide sysctls once
 * at start; they are put back as soon as the node is up (kubelet does not write
 * them again) and on stop. The values it found are kept in a file outside the
 * test bed until then, so a run killed in between is undone by the next start.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { CLUSTER_DNS_IP, renderKubeconfig } from './controlplane.ts';
import { kubectlOk } from './kubectl.ts';
import { HOST_INTERFACE_PREFIX, type NodeNamespace } from './node-namespace.ts';
import { cacheDir, goBinary, systemBinary } from './prerequisites.ts';
import { describeLogs, ManagedProcess, waitUntil } from './process.ts';

const run = promisify(execFile);

export interface NodeCredentials {
  kubeletToken: string;
  kubeProxyToken: string;
  /** CA that signs the API server's client certificate for kubelet. */
  clientCaFile: string;
}

export interface NodeImage {
  archive: string;
  name: string;
  /** More names to tag the image with after import. */
  aliases?: string[];
}

/** What a node joins: its API server, with a kubeconfig of an admin to watch the Node. */
export interface NodeControlPlane {
  server: string;
  /** The API server's serving certificate. */
  caFile: string;
  kubeconfig: string;
}

export interface RealNodeOptions {
  name: string;
  dir: string;
  namespace: NodeNamespace;
  credentials: NodeCredentials;
  /** The sandbox (pause) image and the others to import before kubelet starts; they may still be building. */
  images: Promise<{ pause: NodeImage; others: NodeImage[] }>;
  /** containerd starts and takes the images while the control plane comes up. */
  controlPlane: Promise<NodeControlPlane>;
}

export interface RealNode {
  name: string;
  processes: ManagedProcess[];
  /** containerd's socket, for ctr and crictl. */
  containerdSocket: string;
  /** The cgroup (in every v1 hierarchy) the node's pods live under. */
  cgroupRoot: string;
  logs(lines?: number): string;
  stop(): Promise<void>;
}

/** Written by kubelet once at start (pkg/kubelet/cm setupKernelTunables). */
const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

const runcBinary = (): string =>
  systemBinary('runc', 'Install it with `apt-get install -y runc` (or run `npm run setup` as root).');

export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  const { dir, namespace } = options;
  mkdirSync(dir, { recursive: true });
  const logDir = join(dir, 'logs');
  const processes: ManagedProcess[] = [];
  const cgroupRoot = nodeCgroupRoot(namespace.network.slot);
  const sysctls = recordSysctls(namespace.network.hostInterface);
  const stop = async (): Promise<void> => {
    for (const child of [...processes].reverse()) await child.stop(5_000);
    // The namespace's end kills whatever is left (shims, containers).
    await namespace.stop();
    await removeCgroups(cgroupRoot);
    restoreSysctls(sysctls);
  };
  const launch = (name: string, command: string, args: string[]): ManagedProcess => {
    const child = ManagedProcess.start({ name, command, args, logDir, enter: namespace.pid });
    processes.push(child);
    return child;
  };
  try {
    const images = await options.images;
    const containerdSocket = join(dir, 'containerd', 'containerd.sock');
    const containerd = launch('containerd', goBinary('containerd', 'containerd'), [
      `--config=${writeContainerdConfig(dir, images.pause.name, namespace.network.podCidr)}`,
    ]);
    await waitUntil(async () => (await ctr(containerdSocket, ['version'])).includes('Server:'), {
      what: 'containerd to answer',
      timeoutMs: 30_000,
      watch: [containerd],
    });
    // Two at a time: an import is one core's gunzip and unpack, and there are two.
    await forEachAtMost([images.pause, ...images.others], 2, (image) => importImage(containerdSocket, image));

    const controlPlane = await options.controlPlane;
    await createCgroups(cgroupRoot);
    const kubelet = launch('kubelet', goBinary('kubernetes-node', 'kubelet'), [
      `--config=${writeKubeletConfig(dir, options, containerdSocket, cgroupRoot)}`,
      `--kubeconfig=${writeKubeconfig(dir, 'kubelet', controlPlane, options.credentials.kubeletToken)}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
      `--hostname-override=${options.name}`,
      `--node-ip=${namespace.network.nodeAddress}`,
      '--node-labels=taskapi.dev/testbed-node=real',
      '--v=1',
    ]);
    const kubeProxy = launch('kube-proxy', goBinary('kubernetes-node', 'kube-proxy'), [
      `--config=${writeKubeProxyConfig(dir, options, controlPlane)}`,
      '--v=1',
    ]);
    const all = [containerd, kubelet, kubeProxy];
    await waitUntil(
      async () =>
        (
          await kubectlOk(controlPlane.kubeconfig, [
            'get',
            'node',
            options.name,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ])
        ).trim() === 'True',
      { what: `node ${options.name} to become Ready`, timeoutMs: 90_000, watch: all },
    );
    restoreSysctls(sysctls);
    return {
      name: options.name,
      processes,
      containerdSocket,
      cgroupRoot,
      logs: (lines?: number) => describeLogs(processes, lines),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function ctr(socket: string, args: string[]): Promise<string> {
  return (await run(goBinary('containerd', 'ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args])).stdout;
}

/** Runs `work` on every item, at most `width` at once. */
async function forEachAtMost<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const lane = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

async function importImage(
  socket: string,
  image: { archive: string; name: string; aliases?: string[] },
): Promise<void> {
  // Unpacked for the snapshotter the CRI plugin runs containers from, as kind loads images.
  await ctr(socket, ['images', 'import', '--snapshotter=overlayfs', image.archive]);
  for (const alias of image.aliases ?? []) await ctr(socket, ['images', 'tag', '--force', image.name, alias]);
}

function writeContainerdConfig(dir: string, pauseImage: string, podCidr: string): string {
  const root = join(dir, 'containerd');
  const cniConfDir = join(dir, 'cni', 'net.d');
  mkdirSync(cniConfDir, { recursive: true });
  writeFileSync(join(cniConfDir, '10-testbed.conflist'), JSON.stringify(cniConfig(podCidr), null, 2));
  const cniBinDir = join(goBinary('cni-plugins', 'bridge'), '..');
  const config = `version = 4
root = '${root}/root'
state = '${root}/state'
# Only this file: no drop-ins from /etc/containerd.
imports = []
# opt writes /opt/containerd; NRI listens under /var/run/nri. Neither is used.
disabled_plugins = ['io.containerd.internal.v1.opt', 'io.containerd.nri.v1.nri']

[plugins.'io.containerd.server.v1.grpc']
  address = '${root}/containerd.sock'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '${root}/containerd.sock.ttrpc'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${pauseImage}'

[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root may not lower an OOM score (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '${runcBinary()}'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['${cniBinDir}']
    conf_dir = '${cniConfDir}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
`;
  const file = join(root, 'config.toml');
  mkdirSync(root, { recursive: true });
  writeFileSync(file, config);
  return file;
}

/** Pods on one bridge; the node is their gateway. No masquerade: the host routes the range back. */
function cniConfig(podCidr: string): object {
  return {
    cniVersion: '1.0.0',
    name: 'testbed',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        // A pod reaching itself through its Service's IP.
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

function writeKubeconfig(dir: string, user: string, controlPlane: NodeControlPlane, token: string): string {
  const file = join(dir, `${user}.kubeconfig`);
  writeFileSync(file, renderKubeconfig(controlPlane.server, readFileSync(controlPlane.caFile), token, user), {
    mode: 0o600,
  });
  return file;
}

function writeKubeletConfig(
  dir: string,
  options: RealNodeOptions,
  containerdSocket: string,
  cgroupRoot: string,
): string {
  // Pods with dnsPolicy Default get this; CoreDNS forwards nowhere, so neither does it.
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, '');
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: options.namespace.network.nodeAddress,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    containerRuntimeEndpoint: `unix://${containerdSocket}`,
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot,
    oomScoreAdj: 0,
    failSwapOn: false,
    clusterDNS: [CLUSTER_DNS_IP],
    clusterDomain: 'cluster.local',
    resolvConf,
    // On disk beside the node's other logs, so a failed run's can still be read.
    podLogsDir: join(dir, 'pod-logs'),
    // Only kube-apiserver (a client certificate of the test bed's CA) may call kubelet.
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: false },
      x509: { clientCAFile: options.credentials.clientCaFile },
    },
    authorization: { mode: 'AlwaysAllow' },
    evictionHard: {
      'memory.available': '0%',
      'nodefs.available': '0%',
      'nodefs.inodesFree': '0%',
      'imagefs.available': '0%',
      'imagefs.inodesFree': '0%',
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    rotateCertificates: false,
    // Pod status reaches the API server quickly; tests wait on it.
    nodeStatusReportFrequency: '10s',
    syncFrequency: '10s',
  };
  const file = join(dir, 'kubelet.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

function writeKubeProxyConfig(dir: string, options: RealNodeOptions, controlPlane: NodeControlPlane): string {
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    hostnameOverride: options.name,
    clusterCIDR: options.namespace.network.podCidr,
    clientConnection: {
      kubeconfig: writeKubeconfig(dir, 'kube-proxy', controlPlane, options.credentials.kubeProxyToken),
    },
    bindAddress: options.namespace.network.nodeAddress,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // NodePorts on the node's address only: localhost NodePorts would set route_localnet.
    nodePortAddresses: ['primary'],
    iptables: { localhostNodePorts: false },
    // Conntrack limits are host-wide and may be set only from the host's namespace.
    conntrack: { maxPerCore: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
  const file = join(dir, 'kube-proxy.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** Every cgroup v1 hierarchy (and the unified one) mounted under /sys/fs/cgroup. */
function cgroupMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => {
      const separator = fields.indexOf('-');
      return separator > 0 && (fields[separator + 1] === 'cgroup' || fields[separator + 1] === 'cgroup2');
    })
    .map((fields) => fields[4] ?? '')
    .filter((mount) => mount.startsWith('/sys/fs/cgroup'));
}

const CGROUP_PREFIX = 'taskapi-testbed-node';
const nodeCgroupRoot = (slot: number): string => `/${CGROUP_PREFIX}${slot}`;

/** The cgroups of nodes that are not running (their run was killed). */
export async function removeStaleCgroups(): Promise<void> {
  const running = new Set(readdirSync('/sys/class/net').filter((name) => name.startsWith(HOST_INTERFACE_PREFIX)));
  for (const mount of cgroupMounts()) {
    for (const entry of readdirSync(mount)) {
      const slot = entry.startsWith(CGROUP_PREFIX) ? Number(entry.slice(CGROUP_PREFIX.length)) : NaN;
      if (Number.isInteger(slot) && !running.has(`${HOST_INTERFACE_PREFIX}${slot}`)) await removeCgroups(`/${entry}`);
    }
  }
}

/** kubelet wants its cgroup root to exist in every hierarchy; cpuset needs its CPUs and memory nodes copied down. */
async function createCgroups(cgroupRoot: string): Promise<void> {
  await removeCgroups(cgroupRoot);
  for (const mount of cgroupMounts()) {
    const dir = join(mount, cgroupRoot);
    mkdirSync(dir, { recursive: true });
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(dir, file))) writeFileSync(join(dir, file), readFileSync(join(mount, file)));
    }
  }
}

/** Removes the node's cgroups, deepest first; what a killed run left is removed by the next start. */
export async function removeCgroups(cgroupRoot: string): Promise<void> {
  const remove = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) remove(join(dir, entry.name));
    }
    rmdirSync(dir);
  };
  const dirs = cgroupMounts().map((mount) => join(mount, cgroupRoot));
  // A cgroup stays busy for a moment after its last process is gone.
  await waitUntil(
    () => {
      for (const dir of dirs) {
        if (existsSync(dir)) remove(dir);
      }
      return Promise.resolve(true);
    },
    { what: `the cgroups under ${cgroupRoot} to be removed`, timeoutMs: 15_000 },
  );
}

const sysctlRecord = join(cacheDir, 'state', 'host-sysctls.json');
const readSysctl = (key: string): string => readFileSync(`/proc/sys/${key}`, 'utf8').trim();

/**
 * The host's values of what kubelet writes. A record left by a run that was
 * killed before it put them back holds the true originals: they are restored
 * first. While another node is starting, its record is the one to keep.
 */
function recordSysctls(ownInterface: string): Record<string, string> {
  if (existsSync(sysctlRecord)) {
    const recorded = JSON.parse(readFileSync(sysctlRecord, 'utf8')) as Record<string, string>;
    if (!otherNodeRunning(ownInterface)) restoreSysctls(recorded);
    return recorded;
  }
  const values = Object.fromEntries(KUBELET_SYSCTLS.map((key) => [key, readSysctl(key)]));
  mkdirSync(dirname(sysctlRecord), { recursive: true });
  writeFileSync(sysctlRecord, JSON.stringify(values, null, 2));
  return values;
}

function restoreSysctls(values: Record<string, string>): void {
  for (const [key, value] of Object.entries(values)) {
    if (readSysctl(key) !== value) writeFileSync(`/proc/sys/${key}`, value);
  }
  rmSync(sysctlRecord, { force: true });
}

/** Whether a node of another test bed is up (its veth's host end exists). */
const otherNodeRunning = (ownInterface: string): boolean =>
  readdirSync('/sys/class/net').some((name) => name.startsWith(HOST_INTERFACE_PREFIX) && name !== ownInterface);
