/**
 * The namespaces a real node lives in, and its one link to the host.
 *
 * `unshare` makes a network, PID and mount namespace whose first process (the
 * pause binary, which reaps orphans) holds them. Everything of the node runs
 * inside them (ManagedProcess's `enter`): containerd, its shims and every
 * container, kubelet and kube-proxy. When that first process dies, the kernel
 * kills every process in the PID namespace, the network namespace goes and its
 * veth with it, and every mount made inside (overlay roots, volumes, the tmpfs
 * over /run, /var/lib and /var/log that catch paths kubelet, containerd and the
 * CNI plugins write outside their configured directories) is gone. The first
 * process dies with the Node process that started it (pdeathsig), so a killed
 * test run leaves no container and no network behind either.
 *
 * Addresses, per slot S (one slot per running node; the host interface name
 * claims it): the veth is 10.250.S.0/30 (host end .1, node end .2), pods get
 * 10.251.S.0/24. The host routes only the pod range, via the node; it forwards
 * nothing (its own ip_forward is left alone), so pods reach the host's API
 * server and nothing beyond.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { promisify } from 'node:util';
import { ManagedProcess, waitUntil } from './process.ts';

const run = promisify(execFile);

const MAX_SLOTS = 16;
export const HOST_INTERFACE_PREFIX = 'taskapi-node';
const hostInterface = (slot: number): string => `${HOST_INTERFACE_PREFIX}${slot}`;

export interface NodeNetwork {
  slot: number;
  /** Host end of the veth: kube-apiserver serves here. */
  hostAddress: string;
  /** Node end of the veth: the Node's InternalIP. */
  nodeAddress: string;
  /** The pods' range, on the node's CNI bridge. */
  podCidr: string;
  /** Name of the veth's host end. */
  hostInterface: string;
}

export interface NodeNamespace {
  /** Host PID of the namespaces' first process, for `nsenter --target`. */
  pid: number;
  network: NodeNetwork;
  process: ManagedProcess;
  /** Runs a command inside the node's namespaces and returns its stdout. */
  exec(command: string, args: string[]): Promise<string>;
  /** Kills every process of the node; resolves once its network is gone. */
  stop(): Promise<void>;
}

export function nodeNetwork(slot: number): NodeNetwork {
  return {
    slot,
    hostAddress: `10.250.${slot}.1`,
    nodeAddress: `10.250.${slot}.2`,
    podCidr: `10.251.${slot}.0/24`,
    hostInterface: hostInterface(slot),
  };
}

export async function startNodeNamespace(logDir: string, pauseBinary: string): Promise<NodeNamespace> {
  // Mounts made here stay in the namespace (private propagation): the host sees none.
  const init = ManagedProcess.start({
    name: 'node-namespace',
    // unshare --fork blocks SIGTERM while it waits for its child, so a polite stop
    // only ever ran out its grace period; the node's own programs are stopped
    // before this, and SIGKILL ends pause (--kill-child) and the namespaces with it.
    stopSignal: 'SIGKILL',
    command: 'unshare',
    args: [
      '--net',
      '--pid',
      '--mount',
      '--fork',
      '--kill-child=SIGKILL',
      '--mount-proc',
      '--propagation=private',
      '--',
      '/bin/sh',
      '-ec',
      // -n: no entry in the host's /run/mount/utab (the tmpfs over /run is not there yet).
      'for dir in /run /var/lib /var/log; do mount -n -t tmpfs -o mode=0755 tmpfs "$dir"; done; exec "$0"',
      pauseBinary,
    ],
    logDir,
  });
  let network: NodeNetwork | undefined;
  const stop = async (): Promise<void> => {
    await init.stop();
    if (network) {
      const name = network.hostInterface;
      await waitUntil(() => Promise.resolve(!linkExists(name)), {
        what: `${name} to go with the node`,
        timeoutMs: 10_000,
      });
    }
  };
  try {
    const pid = await namespaceInit(init, pauseBinary);
    network = await claimSlot(pid);
    await configureNetwork(pid, network);
    const exec = async (command: string, args: string[]): Promise<string> =>
      (await run('nsenter', [`--target=${pid}`, '--net', '--pid', '--mount', '--', command, ...args])).stdout;
    return { pid, network, process: init, exec, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The forked child of `unshare`, once it runs pause (so its mounts are in place). */
async function namespaceInit(init: ManagedProcess, pauseBinary: string): Promise<number> {
  let pid = 0;
  const settled = (): boolean => {
    const parent = init.pid;
    if (parent === undefined) return false;
    const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim();
    pid = Number(children.split(' ')[0] ?? 0);
    return pid > 0 && readlinkSync(`/proc/${pid}/exe`) === pauseBinary;
  };
  await waitUntil(() => Promise.resolve(settled()), {
    what: 'the node namespace to be set up',
    timeoutMs: 10_000,
    watch: [init],
  });
  return pid;
}

const linkExists = (name: string): boolean => existsSync(`/sys/class/net/${name}`);

/**
 * Creates the veth pair for the first free slot. Creating the host interface is
 * atomic, so two test beds starting at once cannot take the same slot.
 */
async function claimSlot(pid: number): Promise<NodeNetwork> {
  const taken = await hostRoutes();
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const network = nodeNetwork(slot);
    if (linkExists(network.hostInterface)) continue;
    const clash = taken.find((route) => overlaps(route, `10.250.${slot}.0/30`) || overlaps(route, network.podCidr));
    if (clash) continue;
    try {
      await run('ip', [
        'link',
        'add',
        network.hostInterface,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        String(pid),
      ]);
      return network;
    } catch (error) {
      if (error instanceof Error && /File exists/.test(String((error as { stderr?: string }).stderr))) continue;
      throw error;
    }
  }
  throw new Error(`no free node slot: ${MAX_SLOTS} test bed nodes are running, or their address ranges are in use`);
}

async function configureNetwork(pid: number, network: NodeNetwork): Promise<void> {
  const { hostInterface: name, hostAddress, nodeAddress, podCidr } = network;
  await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', name]);
  await run('ip', ['link', 'set', name, 'up']);
  const inNode = (script: string) =>
    run('nsenter', [`--target=${pid}`, '--net', '--mount', '--', '/bin/sh', '-ec', script]);
  await inNode(
    [
      'ip link set lo up',
      `ip addr add ${nodeAddress}/30 dev eth0`,
      'ip link set eth0 up',
      // Service IPs exist only as kube-proxy's rules here; a default route lets
      // local processes open connections to them. The host forwards nothing.
      `ip route add default via ${hostAddress}`,
      // Per network namespace: the node routes between its veth and the pods' bridge,
      // and bridged pod traffic passes kube-proxy's iptables rules.
      'echo 1 > /proc/sys/net/ipv4/ip_forward',
      'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables',
    ].join('\n'),
  );
  await run('ip', ['route', 'add', podCidr, 'via', nodeAddress, 'dev', name]);
}

/** The host's IPv4 routes other than the default one, as CIDRs. */
async function hostRoutes(): Promise<string[]> {
  const { stdout } = await run('ip', ['-4', 'route', 'show', 'table', 'all']);
  const cidrs: string[] = [];
  for (const line of stdout.split('\n')) {
    const first = line.trim().split(/\s+/)[0] ?? '';
    const target = ['local', 'broadcast', 'unicast', 'blackhole', 'unreachable', 'prohibit'].includes(first)
      ? line.trim().split(/\s+/)[1]
      : first;
    if (!target || target === 'default') continue;
    cidrs.push(target.includes('/') ? target : `${target}/32`);
  }
  return cidrs;
}

const toNumber = (ip: string): number => ip.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);

/** Whether two IPv4 CIDRs share an address. */
export function overlaps(a: string, b: string): boolean {
  const range = (cidr: string): [number, number] => {
    const [ip = '0.0.0.0', bits = '32'] = cidr.split('/');
    const size = 2 ** (32 - Number(bits));
    const start = Math.floor(toNumber(ip) / size) * size;
    return [start, start + size - 1];
  };
  const [aStart, aEnd] = range(a);
  const [bStart, bEnd] = range(b);
  return aStart <= bEnd && bStart <= aEnd;
}
