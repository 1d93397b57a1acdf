/**
 * Informers: a local cache of TaskApis and of every kind the operator owns,
 * kept current by list + watch, as client-go's reflector does it: list in pages,
 * watch from the list's resourceVersion with bookmarks, watch again when the
 * server ends the stream, list again when the version has expired (410), back
 * off on any other failure. The cache holds what `toSnapshot` keeps of each
 * object, not whole objects.
 */
import type { Logger } from 'pino';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { KubeApiError, type KubeClient, type WatchEvent, type WatchStream } from './client.ts';
import { resourcePath, type KindInfo } from './kinds.ts';
import type { RawObject, Snapshot } from './objects.ts';
import { StopSignal } from './stop-signal.ts';

/** Small pages: a page of Deployments is parsed whole before it is trimmed to snapshots. */
const LIST_PAGE_SIZE = 100;
/** The server ends each watch after this long (client-go picks 5-10 minutes at random). */
const WATCH_TIMEOUT_SECONDS = 300;
const RETRY_BACKOFF: BackoffOptions = { baseDelayMs: 500, maxDelayMs: 30_000, jitter: 0.1 };

/** The resourceVersion a watch asked for is gone from the server's window; only a new list helps. */
class ExpiredError extends Error {}

/**
 * Cached objects grouped by a key, as client-go's indexer; one index can serve
 * the informers of several kinds (for children: every kind a TaskApi owns,
 * grouped by `namespace/owner`). Groups are small arrays: a thousand owners
 * cost a thousand of them, not a map per owner per kind.
 */
export class Index<T extends Snapshot> {
  private readonly groups = new Map<string, T[]>();
  private readonly keyOf: (snapshot: T) => string | undefined;

  constructor(keyOf: (snapshot: T) => string | undefined) {
    this.keyOf = keyOf;
  }

  get(key: string): readonly T[] {
    return this.groups.get(key) ?? [];
  }

  add(snapshot: T): void {
    const key = this.keyOf(snapshot);
    if (key === undefined) return;
    const group = this.groups.get(key);
    if (group) group.push(snapshot);
    else this.groups.set(key, [snapshot]);
  }

  remove(snapshot: T): void {
    const key = this.keyOf(snapshot);
    if (key === undefined) return;
    const group = this.groups.get(key);
    if (!group) return;
    const at = group.indexOf(snapshot);
    if (at >= 0) group.splice(at, 1);
    if (group.length === 0) this.groups.delete(key);
  }
}

export class Informer<T extends Snapshot> {
  readonly info: KindInfo;
  private readonly kube: KubeClient;
  private readonly toSnapshot: (object: RawObject) => T;
  private readonly labelSelector: string | undefined;
  private readonly logger: Logger;
  private readonly store = new Map<string, Map<string, T>>();
  private readonly index: Index<T> | undefined;
  private readonly handlers: ((snapshot: T) => void)[] = [];
  private resourceVersion = '';
  private stream: WatchStream | undefined;
  private readonly signal = new StopSignal();
  private running: Promise<void> | undefined;

  constructor(
    kube: KubeClient,
    info: KindInfo,
    toSnapshot: (object: RawObject) => T,
    logger: Logger,
    options: { labelSelector?: string; index?: Index<T> } = {},
  ) {
    this.kube = kube;
    this.info = info;
    this.toSnapshot = toSnapshot;
    this.labelSelector = options.labelSelector;
    this.index = options.index;
    this.logger = logger.child({ kind: info.kind });
  }

  /** Calls `handler` with every added, changed or deleted object. */
  onEvent(handler: (snapshot: T) => void): void {
    this.handlers.push(handler);
  }

  /** Resolves once the first list is in the cache (retrying until it is); then keeps the cache current. */
  async start(): Promise<void> {
    for (let attempt = 0; !this.signal.isStopped(); attempt++) {
      try {
        await this.relist();
        break;
      } catch (error) {
        const retryInMs = Math.round(backoffDelay(RETRY_BACKOFF, attempt));
        this.logger.warn({ err: error, retryInMs }, 'list failed; retrying');
        await this.signal.sleep(retryInMs);
      }
    }
    this.running = this.watchLoop();
  }

  async stop(): Promise<void> {
    this.signal.stop();
    this.stream?.stop();
    await this.running;
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(namespace)?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.store.get(namespace)?.values() ?? [])];
    return [...this.store.values()].flatMap((objects) => [...objects.values()]);
  }

  private emit(snapshot: T): void {
    for (const handler of this.handlers) handler(snapshot);
  }

  private put(snapshot: T): void {
    const { namespace, name } = snapshot.metadata;
    let objects = this.store.get(namespace);
    if (!objects) this.store.set(namespace, (objects = new Map<string, T>()));
    const old = objects.get(name);
    if (old) this.index?.remove(old);
    objects.set(name, snapshot);
    this.index?.add(snapshot);
  }

  private remove(snapshot: T): void {
    const { namespace, name } = snapshot.metadata;
    const objects = this.store.get(namespace);
    const old = objects?.get(name);
    if (old) this.index?.remove(old);
    objects?.delete(name);
    if (objects?.size === 0) this.store.delete(namespace);
  }

  private get query() {
    return { labelSelector: this.labelSelector };
  }

  /** Lists everything, then tells handlers what changed against the cache (deleted objects included). */
  private async relist(): Promise<void> {
    const path = resourcePath(this.info);
    const seen = new Map<string, T>();
    let next: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.kube.list(`list ${this.info.kind}`, path, {
        ...this.query,
        limit: LIST_PAGE_SIZE,
        continue: next,
      });
      for (const item of page.items) {
        // List items carry no apiVersion/kind of their own.
        const snapshot = this.toSnapshot({ ...item, apiVersion: this.info.apiVersion, kind: this.info.kind });
        seen.set(`${snapshot.metadata.namespace}/${snapshot.metadata.name}`, snapshot);
      }
      resourceVersion ||= page.metadata.resourceVersion;
      next = page.metadata.continue || undefined;
    } while (next);
    for (const old of this.list()) {
      if (!seen.has(`${old.metadata.namespace}/${old.metadata.name}`)) {
        this.remove(old);
        this.emit(old);
      }
    }
    for (const snapshot of seen.values()) {
      const old = this.get(snapshot.metadata.namespace, snapshot.metadata.name);
      this.put(snapshot);
      if (old?.metadata.resourceVersion !== snapshot.metadata.resourceVersion) this.emit(snapshot);
    }
    this.resourceVersion = resourceVersion;
  }

  private handle(event: WatchEvent): void {
    const { type, object } = event;
    if (type === 'ERROR') {
      if (object.code === 410) throw new ExpiredError(object.message);
      throw new KubeApiError(
        `watch ${this.info.kind}`,
        object.code ?? 500,
        object.reason ?? 'Unknown',
        object.message ?? '',
      );
    }
    this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
    if (type === 'BOOKMARK') return;
    const snapshot = this.toSnapshot(object);
    if (type === 'DELETED') this.remove(snapshot);
    else this.put(snapshot);
    this.emit(snapshot);
  }

  private async watchLoop(): Promise<void> {
    let attempt = 0;
    while (!this.signal.isStopped()) {
      try {
        if (!this.resourceVersion) await this.relist();
        this.stream = this.kube.watch(
          `watch ${this.info.kind}`,
          resourcePath(this.info),
          {
            ...this.query,
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: WATCH_TIMEOUT_SECONDS,
          },
          (event) => {
            this.handle(event);
          },
        );
        await this.stream.done;
        attempt = 0;
      } catch (error) {
        if (this.signal.isStopped()) return;
        if (error instanceof ExpiredError || (error instanceof KubeApiError && error.statusCode === 410)) {
          this.resourceVersion = '';
          continue;
        }
        const retryInMs = Math.round(backoffDelay(RETRY_BACKOFF, attempt++));
        this.logger.warn({ err: error, retryInMs }, 'list/watch failed; retrying');
        await this.signal.sleep(retryInMs);
      }
    }
  }
}
