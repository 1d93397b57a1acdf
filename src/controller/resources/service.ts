import type { V1Service } from '@kubernetes/client-node';
import type { TaskApi } from '../../api/resource.ts';
import { names, ownedMetadata, selectorLabels, type ChildRole } from '../names.ts';

function service(taskApi: TaskApi, name: string, role: ChildRole): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMetadata(taskApi, name, role),
    spec: {
      selector: selectorLabels(taskApi, role),
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** The task service's Service: port 80 to the pods' http port. */
export const buildTaskService = (taskApi: TaskApi): V1Service => service(taskApi, names.app(taskApi), 'task-service');

export function buildNotificationService(taskApi: TaskApi): V1Service | undefined {
  const notifications = taskApi.spec.notifications;
  return notifications?.deploy ? service(taskApi, notifications.appId, 'notification-service') : undefined;
}
