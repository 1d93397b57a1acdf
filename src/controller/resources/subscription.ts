import { TASK_EVENTS_ROUTE } from '../../api/contract.ts';
import type { TaskApi } from '../../api/resource.ts';
import { names, ownedMetadata, type OwnedMetadata } from '../names.ts';

export interface DaprSubscription {
  apiVersion: 'dapr.io/v2alpha1';
  kind: 'Subscription';
  metadata: OwnedMetadata;
  spec: { pubsubname: string; topic: string; routes: { default: string } };
  scopes: string[];
}

/** A declarative Subscription delivering the TaskApi's topic to its own service only. */
export function buildSubscription(taskApi: TaskApi): DaprSubscription {
  return {
    apiVersion: 'dapr.io/v2alpha1',
    kind: 'Subscription',
    metadata: ownedMetadata(taskApi, names.subscription(taskApi), 'subscription'),
    spec: {
      pubsubname: names.pubsubComponent(taskApi),
      topic: names.topic(taskApi),
      routes: { default: TASK_EVENTS_ROUTE },
    },
    scopes: [names.app(taskApi)],
  };
}
