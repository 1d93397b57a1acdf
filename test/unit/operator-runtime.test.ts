import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Index } from '../../src/kube/informers.ts';
import { LineDecoder } from '../../src/kube/lines.ts';
import { USER_AGENT } from '../../src/controller/taskapi-client.ts';
import { KubeconfigError, loadConnection } from '../../src/kube/kubeconfig.ts';
import { Counter, Histogram, Registry } from '../../src/kube/prometheus.ts';
import { settingsFromEnv } from '../../src/controller/settings.ts';
import { ownerKey, type ChildSnapshot } from '../../src/controller/snapshot.ts';

describe('operator settings', () => {
  it('default every variable', () => {
    const settings = settingsFromEnv({ POD_NAME: 'op-1', POD_NAMESPACE: 'ops' });
    expect(settings).toMatchObject({ concurrency: 8, resyncPeriodMs: 600_000, metricsPort: 8080, logLevel: 'info' });
    expect(settings.leaderElection).toMatchObject({
      namespace: 'ops',
      identity: 'op-1',
      leaseName: 'taskapi-operator',
    });
  });

  it('refuse bad values, naming every variable at once', () => {
    expect(() =>
      settingsFromEnv({ OPERATOR_CONCURRENCY: '0', METRICS_PORT: 'http', LOG_LEVEL: 'loud', LEADER_ELECT: 'yes' }),
    ).toThrow(
      /OPERATOR_CONCURRENCY: expected an integer from 1 to 256, got "0".*LEADER_ELECT: expected one of true, false, got "yes".*METRICS_PORT.*"http".*LOG_LEVEL: expected one of trace, debug, info, warn, error, got "loud"/,
    );
  });

  it('turn leader election off', () => {
    expect(settingsFromEnv({ LEADER_ELECT: 'false' }).leaderElection).toBeUndefined();
  });
});

describe('Prometheus exposition', () => {
  it('renders counters with labels and cumulative histogram buckets', () => {
    const registry = new Registry();
    const total = registry.register(new Counter({ name: 'x_total', help: 'Xs.', labelNames: ['result'] }));
    const time = registry.register(new Histogram({ name: 'x_seconds', help: 'Time.', buckets: [0.1, 1] }));
    total.inc({ result: 'success' });
    total.inc({ result: 'success' }, 2);
    time.observe({}, 0.5);
    time.observe({}, 0.05);
    const text = registry.render();
    expect(text).toContain('# TYPE x_total counter\nx_total{result="success"} 3');
    expect(text).toContain('x_seconds_bucket{le="0.1"} 1\nx_seconds_bucket{le="1"} 2\nx_seconds_bucket{le="+Inf"} 2');
    expect(text).toContain('x_seconds_sum 0.55');
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
  });

  it('refuses a label the metric does not declare', () => {
    const counter = new Counter({ name: 'y_total', help: 'Ys.', labelNames: ['a'] });
    expect(() => {
      counter.inc({ b: '1' });
    }).toThrow('metric y_total has no label b');
  });
});

describe('kubeconfig', () => {
  const write = (content: string): string => {
    const path = join(mkdtempSync(join(tmpdir(), 'kubeconfig-')), 'config');
    writeFileSync(path, content);
    return path;
  };

  it('reads a YAML kubeconfig: server, CA data, token and namespace of the current context', async () => {
    const path = write(`apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: c
    cluster: { server: 'https://k8s.example:6443/', certificate-authority-data: ${Buffer.from('CA').toString('base64')} }
users:
  - name: u
    user: { token: abc }
contexts:
  - name: other
    context: { cluster: nope, user: nope }
  - name: dev
    context: { cluster: c, user: u, namespace: shop }
`);
    const connection = await loadConnection({ KUBECONFIG: path });
    expect(connection.server).toBe('https://k8s.example:6443');
    expect(connection.ca?.toString()).toBe('CA');
    expect(connection.token()).toBe('abc');
    expect(connection.namespace).toBe('shop');
  });

  it('merges every file of $KUBECONFIG as kubectl does: the first to name an entry or the context wins', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
    const first = join(dir, 'first');
    const second = join(dir, 'second');
    writeFileSync(join(dir, 'first-token'), 'from-first-file\n');
    writeFileSync(
      first,
      JSON.stringify({
        'current-context': 'prod',
        users: [{ name: 'ops', user: { tokenFile: 'first-token' } }],
        clusters: [{ name: 'main', cluster: { server: 'https://first.example' } }],
      }),
    );
    writeFileSync(
      second,
      JSON.stringify({
        'current-context': 'ignored',
        clusters: [
          { name: 'main', cluster: { server: 'https://second.example' } },
          { name: 'prod-cluster', cluster: { server: 'https://prod.example:443/', 'tls-server-name': 'api.internal' } },
        ],
        users: [{ name: 'ops', user: { token: 'from-second-file' } }],
        contexts: [{ name: 'prod', context: { cluster: 'prod-cluster', user: 'ops', namespace: 'shop' } }],
      }),
    );
    const connection = await loadConnection({ KUBECONFIG: `${join(dir, 'missing')}:${first}:${second}` });
    expect(connection.server).toBe('https://prod.example:443');
    expect(connection.tlsServerName).toBe('api.internal');
    expect(connection.namespace).toBe('shop');
    // The user from the first file, its relative tokenFile read from that file's directory.
    expect(connection.token()).toBe('from-first-file');
    expect(connection.source).toBe(`${first}:${second}`);
  });

  it.each([
    ['proxy-url', { server: 'https://x', 'proxy-url': 'http://proxy:3128' }, { token: 't' }, /sets proxy-url/],
    ['auth-provider', { server: 'https://x' }, { 'auth-provider': { name: 'gcp' } }, /sets auth-provider: .*exec/],
    ['basic auth', { server: 'https://x' }, { username: 'admin', password: 'secret' }, /sets username/],
    [
      'an exec plugin without a command',
      { server: 'https://x' },
      { exec: { args: ['x'] } },
      /exec plugin without a command/,
    ],
  ])('refuses %s, naming it', async (_what, cluster, user, message) => {
    const path = write(
      JSON.stringify({
        'current-context': 'c',
        clusters: [{ name: 'c', cluster }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      }),
    );
    const loading = loadConnection({ KUBECONFIG: path });
    await expect(loading).rejects.toThrow(KubeconfigError);
    await expect(loading).rejects.toThrow(message);
    await expect(loading).rejects.not.toThrow(/secret/);
  });

  it('says which files it looked for when none exists, or which context is missing', async () => {
    await expect(loadConnection({ KUBECONFIG: '/nonexistent/a:/nonexistent/b' })).rejects.toThrow(
      'kubeconfig: none of /nonexistent/a, /nonexistent/b exists',
    );
    await expect(loadConnection({ KUBECONFIG: write('{"current-context":"gone"}') })).rejects.toThrow(
      /current-context "gone" not found/,
    );
  });
});

describe('owner index', () => {
  const child = (kind: string, name: string, owner: string | undefined, resourceVersion = '1'): ChildSnapshot => ({
    apiVersion: 'v1',
    kind,
    metadata: { namespace: 'shop', name, resourceVersion },
    owner,
    appliedHash: '',
  });
  const byOwner = () => new Index<ChildSnapshot>(ownerKey);
  const names = (children: readonly ChildSnapshot[]) => children.map((c) => `${c.kind}/${c.metadata.name}`).sort();

  it('groups children of every kind under their owner, and nothing else', () => {
    const index = byOwner();
    for (const c of [
      child('Service', 'a', 'a'),
      child('Deployment', 'a', 'a'),
      child('Service', 'b', 'b'),
      child('Service', 'stray', undefined),
    ])
      index.add(c);
    expect(names(index.get('shop/a'))).toEqual(['Deployment/a', 'Service/a']);
    expect(names(index.get('shop/b'))).toEqual(['Service/b']);
    expect(index.get('other/a')).toEqual([]);
  });

  it('forgets what was replaced or removed', () => {
    const index = byOwner();
    const first = child('Service', 'a', 'a', '1');
    const second = child('Service', 'a', 'a', '2');
    index.add(first);
    index.remove(first);
    index.add(second);
    expect(index.get('shop/a')).toEqual([second]);
    index.remove(second);
    expect(index.get('shop/a')).toEqual([]);
  });
});

describe('watch stream lines', () => {
  it('keeps a character whose bytes two chunks split, and cuts lines where the newlines are', () => {
    const event = `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'tâche', annotations: { note: 'naïve ✓' } } } })}\n`;
    const bytes = Buffer.from(`${event}${event}`, 'utf8');
    // Split inside the three bytes of '✓' and inside the two of 'â'.
    const tick = bytes.indexOf(Buffer.from('✓', 'utf8')) + 1;
    const hat = bytes.lastIndexOf(Buffer.from('â', 'utf8')) + 1;
    const decoder = new LineDecoder();
    const lines = [
      ...decoder.push(bytes.subarray(0, tick)),
      ...decoder.push(bytes.subarray(tick, hat)),
      ...decoder.push(bytes.subarray(hat)),
    ];
    expect(lines).toEqual([event.trimEnd(), event.trimEnd()]);
    // What decoding each chunk alone gave: replacement characters.
    expect(bytes.subarray(0, tick).toString('utf8')).toContain('\uFFFD');
  });

  it('holds back a line until its newline arrives, and skips blank ones', () => {
    const decoder = new LineDecoder();
    expect(decoder.push(Buffer.from('{"a":1}\n\n{"b"'))).toEqual(['{"a":1}']);
    expect(decoder.push(Buffer.from(':2}\n'))).toEqual(['{"b":2}']);
  });
});

describe("the operator's User-Agent", () => {
  it('names the operator and its version, as client-go names a program', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(USER_AGENT).toBe(
      `taskapi-operator/${pkg.version} (${process.platform}/${process.arch}) node/${process.versions.node}`,
    );
  });
});
