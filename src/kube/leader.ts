/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the
 * holder renews the Lease; others take it over once it has not changed for a
 * lease duration, judged by their own clock (when they last saw it change),
 * so clock skew between nodes does not matter. A leader that cannot renew
 * within the renew deadline stops leading.
 */
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient } from './client.ts';
import { LEASE_KIND } from './kinds.ts';
import { StopSignal } from './stop-signal.ts';

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits, or the API server refuses it. */
const microTime = (date: Date): string => date.toISOString().replace(/Z$/, '000Z');

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export class LeaderElector {
  private readonly kube: KubeClient;
  private readonly options: LeaderElectionOptions;
  private readonly logger: Logger;
  private observed: { record: string; at: number } | undefined;
  private readonly signal = new StopSignal();
  private leading = false;

  constructor(kube: KubeClient, options: LeaderElectionOptions, logger: Logger) {
    this.kube = kube;
    this.options = options;
    this.logger = logger.child({ lease: `${options.namespace}/${options.leaseName}`, identity: options.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Waits until this process holds the Lease, then calls `onStarted`, keeps renewing,
   * and calls `onLost` if renewal fails past the deadline. Resolves when stopped or lost.
   */
  async run(onStarted: () => void, onLost: () => void): Promise<void> {
    while (!this.signal.isStopped() && !(await this.attempt())) await this.signal.sleep(this.options.retryPeriodMs);
    if (this.signal.isStopped()) return;
    this.leading = true;
    this.logger.info('became leader');
    onStarted();
    let lastRenew = Date.now();
    while (!this.signal.isStopped()) {
      await this.signal.sleep(this.options.retryPeriodMs);
      if (this.signal.isStopped()) break;
      if (await this.attempt()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.options.renewDeadlineMs) {
        this.leading = false;
        this.logger.error('lost leadership: could not renew the lease in time');
        onLost();
        return;
      }
    }
  }

  /** The acquire-or-renew in flight, if any: stop() lets it land before it hands the Lease back. */
  private inFlight: Promise<boolean> | undefined;

  private attempt(): Promise<boolean> {
    this.inFlight = this.tryAcquireOrRenew();
    return this.inFlight;
  }

  /** Stops campaigning; a leader hands the Lease back so another replica takes over at once. */
  async stop(): Promise<void> {
    this.signal.stop();
    if (!this.leading) return;
    this.leading = false;
    // A renew still in flight would otherwise land after the release was read, and the release lose the race.
    await this.inFlight?.catch(() => false);
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      const now = microTime(new Date());
      Object.assign(lease.spec, { holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now });
      await this.replace(lease);
      this.logger.info('released leadership');
    } catch (error) {
      this.logger.warn({ err: error }, 'could not release the lease; it expires by itself');
    }
  }

  private read(): Promise<Lease | undefined> {
    return this.kube.get<Lease>({
      apiVersion: LEASE_KIND.apiVersion,
      kind: LEASE_KIND.kind,
      metadata: { namespace: this.options.namespace, name: this.options.leaseName },
    });
  }

  private async replace(lease: Lease): Promise<void> {
    await this.kube.replace(lease);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { identity, leaseDurationMs, leaseName, namespace } = this.options;
    const now = microTime(new Date());
    const leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    try {
      const lease = await this.read();
      if (!lease) {
        const lease: Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: leaseName, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        };
        await this.kube.create(lease);
        return true;
      }
      const spec = lease.spec ?? {};
      const record = `${spec.holderIdentity ?? ''}|${spec.renewTime ?? ''}|${spec.leaseDurationSeconds ?? ''}`;
      if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
      const heldByOther = spec.holderIdentity && spec.holderIdentity !== identity;
      const expiresAt = this.observed.at + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (heldByOther && Date.now() < expiresAt) return false;
      const takingOver = spec.holderIdentity !== identity;
      lease.spec = Object.assign(spec, {
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        ...(takingOver
          ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + (spec.holderIdentity ? 1 : 0) }
          : {}),
      });
      await this.replace(lease);
      return true;
    } catch (error) {
      // 409: someone else wrote the Lease first; that is the election working, not a failure.
      if (!(error instanceof KubeApiError && error.statusCode === 409)) {
        this.logger.warn({ err: error }, 'lease update failed');
      }
      return false;
    }
  }
}
