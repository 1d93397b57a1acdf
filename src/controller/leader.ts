/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the
 * holder renews the Lease; others take it over once it has not changed for a
 * lease duration, judged by their own clock (when they last saw it change),
 * so clock skew between nodes does not matter. A leader that cannot renew
 * within the renew deadline stops leading.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isNotFound, KubeApiError, toKubeApiError } from './kube.ts';

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly options: LeaderElectionOptions;
  private readonly logger: Logger;
  private observed: { record: string; at: number } | undefined;
  private stopped = false;
  private leading = false;
  private wake: (() => void) | undefined;

  constructor(config: KubeConfig, options: LeaderElectionOptions, logger: Logger) {
    this.api = config.makeApiClient(CoordinationV1Api);
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
    while (!this.isStopped() && !(await this.tryAcquireOrRenew())) await this.sleep(this.options.retryPeriodMs);
    if (this.isStopped()) return;
    this.leading = true;
    this.logger.info('became leader');
    onStarted();
    let lastRenew = Date.now();
    while (!this.isStopped()) {
      await this.sleep(this.options.retryPeriodMs);
      if (this.isStopped()) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.options.renewDeadlineMs) {
        this.leading = false;
        this.logger.error('lost leadership: could not renew the lease in time');
        onLost();
        return;
      }
    }
  }

  /** Stops campaigning; a leader hands the Lease back so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      const now = new V1MicroTime();
      Object.assign(lease.spec, { holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now });
      await this.replace(lease);
      this.logger.info('released leadership');
    } catch (error) {
      this.logger.warn({ err: error }, 'could not release the lease; it expires by itself');
    }
  }

  /** A method, not the field: stop() flips it while run() awaits. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.leaseName, namespace: this.options.namespace });
    } catch (error) {
      const wrapped = toKubeApiError('read Lease', error);
      if (isNotFound(wrapped)) return undefined;
      throw wrapped;
    }
  }

  private async replace(lease: V1Lease): Promise<void> {
    await this.api.replaceNamespacedLease({
      name: this.options.leaseName,
      namespace: this.options.namespace,
      body: lease,
    });
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { identity, leaseDurationMs, leaseName, namespace } = this.options;
    const now = new V1MicroTime();
    const leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    try {
      const lease = await this.read();
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: leaseName, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const record = `${spec.holderIdentity ?? ''}|${String(spec.renewTime?.valueOf())}|${spec.leaseDurationSeconds ?? ''}`;
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
      const wrapped = toKubeApiError('acquire or renew Lease', error);
      // 409: someone else wrote the Lease first; that is the election working, not a failure.
      if (!(wrapped instanceof KubeApiError && wrapped.statusCode === 409)) {
        this.logger.warn({ err: wrapped }, 'lease update failed');
      }
      return false;
    }
  }
}
