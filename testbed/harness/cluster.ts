/**
 * A cluster with a real node and Dapr, in one call: the control plane serving
 * on the host end of the node's veth, the node (containerd, kubelet,
 * kube-proxy), CoreDNS, and Dapr's control plane from its own Helm chart, every
 * image built here. kwok still runs, with its fake node tainted so only pods
 * that ask for it go there. The light test bed (testbed.ts: control plane and
 * kwok on loopback) stays what most cluster tests and the 1,000-TaskApi
 * benchmark use; this one needs root.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { DAPR_NAMESPACE, installCoreDns, installDapr } from './addons.ts';
import { serveFaults } from './faults.ts';
import { startControlPlane, type ControlPlane } from './controlplane.ts';
import { ensureImages, type TestbedImages } from './images.ts';
import { projectImageNames } from './install.ts';
import { startNodeNamespace, type NodeNetwork } from './node-namespace.ts';
import { removeStaleCgroups, startRealNode, type RealNode } from './node.ts';
import { makeKubeletPki } from './pki.ts';
import { goBinary } from './prerequisites.ts';
import { describeLogs } from './process.ts';

export const REAL_NODE_NAME = 'taskapi-node';

export interface RealCluster {
  dir: string;
  kubeconfig: string;
  server: string;
  nodeName: string;
  network: NodeNetwork;
  /** Host PID of the process holding the node's namespaces. */
  nodePid: number;
  controlPlane: ControlPlane;
  node: RealNode;
  images: TestbedImages;
  /** Home of the helm that installed Dapr (its cache, config and data). */
  helmHome: string;
  /** Unix socket where a test asks for one of the cluster's programs to be crashed and restarted (faults.ts). */
  faultSocket: string;
  /** Seconds each step took; the node's (containerd, images, kubelet) overlaps the control plane's. */
  startupSeconds: Record<'images' | 'controlPlane' | 'node' | 'coreDns' | 'dapr', number>;
  logs(lines?: number): string;
  stop(): Promise<void>;
}

/** What tests need to reach the cluster; plain data, passed from the global setup to test workers. */
export type RealClusterInfo = Pick<
  RealCluster,
  'dir' | 'kubeconfig' | 'server' | 'nodeName' | 'network' | 'nodePid' | 'helmHome' | 'images'
> &
  Pick<RealNode, 'containerdSocket' | 'cgroupRoot'>;

/**
 * What the end-to-end tests need of a cluster, whichever runs it (this test
 * bed's real node, or kind on a machine with Docker): kubectl's kubeconfig, a
 * directory of their own, helm's home, how to run ctr against the node's
 * containerd, and the images for the dev backends when they are not pulled.
 */
export interface ChainInfo {
  kubeconfig: string;
  dir: string;
  helmHome: string;
  /** The command line of ctr in the node's containerd namespace k8s.io, before its subcommand. */
  ctr: string[];
  /** Images for config/backends' Redis and PostgreSQL; undefined: the public ones are pulled. */
  backendImages: { redis: string; postgres: string } | undefined;
  /**
   * Where to ask for kube-apiserver, etcd, containerd, … to be SIGKILLed and
   * restarted (faults.ts); undefined on a cluster this test bed did not start.
   */
  faultSocket: string | undefined;
}

export function chainInfo(cluster: RealCluster): ChainInfo {
  return {
    kubeconfig: cluster.kubeconfig,
    dir: cluster.dir,
    helmHome: cluster.helmHome,
    ctr: [goBinary('containerd', 'ctr'), '--address', cluster.node.containerdSocket, '--namespace', 'k8s.io'],
    backendImages: { redis: cluster.images.redis.name, postgres: cluster.images.postgres.name },
    faultSocket: cluster.faultSocket,
  };
}

export class NeedsRootError extends Error {
  constructor() {
    super(
      'a real node needs root: it makes network, PID and mount namespaces, a veth, cgroups and mounts. ' +
        'Run as root; without root only the kwok test bed (control plane, kwok, daprd, Redis, PostgreSQL) can run.',
    );
    this.name = 'NeedsRootError';
  }
}

export interface RealClusterOptions {
  /**
   * Install Dapr's control plane and load Dapr's, the project's and the stores'
   * images into the node (default true). Without, the cluster runs CoreDNS
   * alone, and starts some 20 s sooner: each image is a few seconds to import.
   */
  dapr?: boolean;
  keepDir?: boolean;
}

export async function startRealCluster(options: RealClusterOptions = {}): Promise<RealCluster> {
  if (userInfo().uid !== 0) throw new NeedsRootError();
  const withDapr = options.dapr ?? true;
  await removeLeftovers();
  const dir = mkdtempSync(join(tmpdir(), CLUSTER_DIR_PREFIX));
  // Traversable by the pods' non-root users (kubelet's volumes live below).
  chmodSync(dir, 0o711);
  writeFileSync(join(dir, OWNER_FILE), processIdentity(process.pid) ?? '');
  const stoppers: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const stopPart of stoppers.reverse()) await stopPart();
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const seconds: Partial<RealCluster['startupSeconds']> = {};
  const timed = async <T>(step: keyof RealCluster['startupSeconds'], start: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await start();
    seconds[step] = (performance.now() - started) / 1000;
    return result;
  };
  let logs = (): string => '';
  try {
    // The images build (when their inputs changed) and the node's containerd takes
    // them while the control plane starts.
    const images = timed('images', () => ensureImages());
    // Awaited below; a failure before then must not go unhandled.
    images.catch(() => undefined);
    const pki = await makeKubeletPki(join(dir, 'pki'));
    // From here on the node owns its namespace: a node that fails to start ends it.
    const namespace = await startNodeNamespace(join(dir, 'node', 'logs'), goBinary('kubernetes-node', 'pause'));
    const credentials = {
      kubeletToken: randomBytes(24).toString('hex'),
      kubeProxyToken: randomBytes(24).toString('hex'),
      clientCaFile: pki.caFile,
    };
    const controlPlaneReady = timed('controlPlane', () =>
      startControlPlane(join(dir, 'cluster'), {
        nodeNetwork: {
          address: namespace.network.hostAddress,
          kubeletClient: pki.apiserverClient,
          tokens: [
            { token: credentials.kubeletToken, user: `system:node:${REAL_NODE_NAME}`, groups: ['system:nodes'] },
            { token: credentials.kubeProxyToken, user: 'system:kube-proxy', groups: [] },
          ],
        },
        // Dapr's chart installs them, with the conversion webhook dapr-operator serves.
        daprCrds: !withDapr,
      }),
    );
    const nodeReady = timed('node', () =>
      startRealNode({
        name: REAL_NODE_NAME,
        dir: join(dir, 'node'),
        namespace,
        credentials,
        images: images.then((built) => ({
          pause: built.pause,
          others: [
            built.coredns,
            ...(withDapr
              ? [
                  built.dapr,
                  built.nodeBase,
                  // Also under the names the install surfaces use, as `kind load` would.
                  { ...built.app, aliases: [...(built.app.aliases ?? []), ...projectImageNames()] },
                  built.redis,
                  built.postgres,
                ]
              : []),
          ],
        })),
        controlPlane: controlPlaneReady,
      }),
    );
    const [controlPlaneStarted, nodeStarted] = await Promise.allSettled([controlPlaneReady, nodeReady]);
    // Stopped in reverse: the node (and its namespace) first, then the control plane.
    if (controlPlaneStarted.status === 'fulfilled') stoppers.push(() => controlPlaneStarted.value.stop());
    if (nodeStarted.status === 'fulfilled') stoppers.push(() => nodeStarted.value.stop());
    if (controlPlaneStarted.status === 'rejected') throw controlPlaneStarted.reason;
    if (nodeStarted.status === 'rejected') throw nodeStarted.reason;
    const controlPlane = controlPlaneStarted.value;
    const node = nodeStarted.value;
    const built = await images;
    const { kubeconfig } = controlPlane;
    logs = () => describeLogs([...controlPlane.processes, namespace.process, ...node.processes]);

    await timed('coreDns', () => installCoreDns(kubeconfig, built.coredns.name));
    const faults = await serveFaults(join(dir, 'faults.sock'), () => [...controlPlane.processes, ...node.processes]);
    stoppers.push(() => faults.stop());
    const helmHome = join(dir, 'helm');
    mkdirSync(helmHome, { recursive: true });
    if (withDapr)
      await timed('dapr', () => installDapr(kubeconfig, helmHome, daprImage(built), join(dir, 'scheduler-data')));

    return {
      dir,
      kubeconfig,
      server: controlPlane.server,
      nodeName: REAL_NODE_NAME,
      network: namespace.network,
      nodePid: namespace.pid,
      controlPlane,
      node,
      images: built,
      helmHome,
      faultSocket: faults.socket,
      startupSeconds: { images: 0, controlPlane: 0, node: 0, coreDns: 0, dapr: 0, ...seconds },
      logs: (lines?: number) => describeLogs([...controlPlane.processes, namespace.process, ...node.processes], lines),
      stop,
    };
  } catch (error) {
    const tails = logs();
    await stop();
    if (error instanceof Error && tails) error.message += `\n${tails}`;
    throw error;
  }
}

const CLUSTER_DIR_PREFIX = 'taskapi-cluster-';
const OWNER_FILE = 'owner';

/** A process's PID with its start time, which tells it from a later process given the same PID. */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name.
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return `${pid} ${startTime}`;
  } catch {
    return undefined;
  }
}

/**
 * What killed runs left behind: a killed process cannot remove its cluster's
 * directory, nor the (empty) cgroups its node's pods lived in. Everything that
 * ran or routed died with it (node-namespace.ts).
 */
export async function removeLeftovers(): Promise<void> {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(CLUSTER_DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    const ownerFile = join(dir, OWNER_FILE);
    if (existsSync(ownerFile)) {
      const owner = readFileSync(ownerFile, 'utf8').trim();
      if (processIdentity(Number(owner.split(' ')[0])) === owner) continue;
    } else if (Date.now() - statSync(dir).mtimeMs < 60_000) {
      continue; // Being created right now.
    }
    rmSync(dir, { recursive: true, force: true });
  }
  await removeStaleCgroups();
}

/** Registry and tag of the one Dapr image, as Dapr's chart composes `{registry}/{name}:{tag}`. */
function daprImage(images: TestbedImages): { registry: string; tag: string } {
  const name = images.dapr.name;
  const colon = name.lastIndexOf(':');
  const slash = name.lastIndexOf('/');
  return { registry: name.slice(0, slash), tag: name.slice(colon + 1) };
}

export function realClusterInfo(cluster: RealCluster): RealClusterInfo {
  const { dir, kubeconfig, server, nodeName, network, nodePid, helmHome, images, node } = cluster;
  const { containerdSocket, cgroupRoot } = node;
  return { dir, kubeconfig, server, nodeName, network, nodePid, helmHome, images, containerdSocket, cgroupRoot };
}

export { DAPR_NAMESPACE };
