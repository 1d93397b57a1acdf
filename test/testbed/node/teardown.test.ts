/**
 * A real node leaves nothing behind: not when it is stopped, and not when the
 * process that started it is killed. Each test starts a second cluster (without
 * Dapr, so it is quick) beside the one the other tests share, lists what the
 * host has before and after, and follows the node's own namespaces.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeLeftovers, startRealCluster } from '../../../testbed/harness/cluster.ts';
import { waitUntil } from '../../../testbed/harness/process.ts';

/** What the host shows of its own state, which a node must leave as it found it. */
function hostState(): Record<string, string[]> {
  const lines = (text: string): string[] => text.split('\n').filter(Boolean).sort();
  return {
    links: readdirSync('/sys/class/net').sort(),
    routes: lines(readFileSync('/proc/net/route', 'utf8')),
    mounts: lines(readFileSync('/proc/self/mountinfo', 'utf8')).map((line) => line.split(' ').slice(3, 5).join(' ')),
    namedNetworkNamespaces: existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [],
    cgroups: readdirSync('/sys/fs/cgroup/memory').filter((name) => name.startsWith('taskapi-testbed')),
    // Where kubelet, containerd, runc, the CNI plugins and mount(8) write by default.
    defaultPaths: [
      '/run/containerd',
      '/run/runc',
      '/run/mount',
      '/run/nri',
      '/run/netns',
      '/var/lib/kubelet',
      '/var/lib/cni',
      '/var/lib/containerd',
      '/var/log/pods',
      '/var/log/containers',
      '/opt/containerd',
      '/etc/cni',
    ].filter((path) => existsSync(path)),
    sysctls: ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops'].map(
      (key) => `${key}=${readFileSync(`/proc/sys/${key}`, 'utf8').trim()}`,
    ),
  };
}

interface NodeIdentity {
  pid: number;
  dir: string;
  hostInterface: string;
  namespaces: string[];
}

const NAMESPACE_KINDS = ['net', 'pid', 'mnt'];

function identify(pid: number, dir: string, hostInterface: string): NodeIdentity {
  return {
    pid,
    dir,
    hostInterface,
    namespaces: NAMESPACE_KINDS.map((kind) => readlinkSync(`/proc/${pid}/ns/${kind}`)),
  };
}

/** Processes still inside any of the node's namespaces. */
function processesInside(node: NodeIdentity): number[] {
  const inside: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (NAMESPACE_KINDS.some((kind) => node.namespaces.includes(readlinkSync(`/proc/${entry}/ns/${kind}`)))) {
        inside.push(Number(entry));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return inside;
}

function expectGone(node: NodeIdentity, before: Record<string, string[]>): void {
  expect(processesInside(node)).toEqual([]);
  expect(existsSync(`/sys/class/net/${node.hostInterface}`)).toBe(false);
  const after = hostState();
  expect(after).toEqual(before);
}

describe('a real node on teardown', () => {
  it('leaves no process, namespace, veth, route, mount, cgroup or changed sysctl behind when stopped', async () => {
    const before = hostState();
    const cluster = await startRealCluster({ dapr: false });
    const node = identify(cluster.nodePid, cluster.dir, cluster.network.hostInterface);
    // Running: the node's processes (containerd, its shims, CoreDNS's containers) are inside.
    expect(processesInside(node).length).toBeGreaterThan(5);
    expect(hostState().links).toContain(node.hostInterface);
    await cluster.stop();
    expectGone(node, before);
    expect(existsSync(cluster.dir)).toBe(false);
  });

  it('leaves no process, namespace, veth, route or mount behind when the process that started it is killed, and the next start removes the rest', async () => {
    const before = hostState();
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'support', 'cluster-child.ts')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exitedEarly = new Promise<never>((_resolve, reject) => {
      child.once('exit', (code, signal) => {
        reject(new Error(`the cluster's process exited early (${code ?? signal}):\n${output.slice(-4000)}`));
      });
    });
    exitedEarly.catch(() => undefined);
    let node: NodeIdentity | undefined;
    const ready = waitUntil(
      () => {
        const line = /^READY (.*)$/m.exec(output)?.[1];
        if (!line) return Promise.resolve(false);
        const info = JSON.parse(line) as { pid: number; dir: string; hostInterface: string };
        node = identify(info.pid, info.dir, info.hostInterface);
        return Promise.resolve(true);
      },
      { what: 'the cluster in a child process to be up', timeoutMs: 240_000 },
    );
    await Promise.race([ready, exitedEarly]);
    if (!node) throw new Error('unreachable');
    const running = node;
    expect(processesInside(running).length).toBeGreaterThan(5);
    child.kill('SIGKILL');
    // The kernel ends the namespaces' processes, then tears the network namespace down in the background.
    await waitUntil(
      () =>
        Promise.resolve(
          processesInside(running).length === 0 && !existsSync(`/sys/class/net/${running.hostInterface}`),
        ),
      { what: "the killed run's node processes and network to go", timeoutMs: 30_000 },
    );
    // Nothing runs and the network is gone; the directory and the node's empty
    // cgroups remain, which the next start removes (as it does here).
    const { cgroups, ...rest } = before;
    const { cgroups: cgroupsLeft, ...restAfter } = hostState();
    expect(restAfter).toEqual(rest);
    expect(existsSync(running.dir)).toBe(true);
    expect(cgroupsLeft?.length).toBe((cgroups?.length ?? 0) + 1);
    await removeLeftovers();
    expectGone(running, before);
    expect(existsSync(running.dir)).toBe(false);
  });
});
