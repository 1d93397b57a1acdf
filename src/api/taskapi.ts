/**
 * The TaskApi resource (taskapi.dev/v1alpha1): the one source of the TS types,
 * the CRD's openAPIV3Schema (descriptions, defaults, CEL rules) and defaulting.
 */
import { z } from 'zod';
import { STATE_BACKENDS, SWAP_PHASES } from './resource.ts';

/** A CEL rule as the apiserver evaluates it (`x-kubernetes-validations`). */
interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueDuplicate';
}
const celRules = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
// The pattern Kubernetes itself uses for resource.Quantity.
const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
/**
 * A schedule Dapr's cron binding takes (robfig/cron, seconds optional): five or
 * six fields, a descriptor such as @hourly, or @every with a Go duration.
 */
const CRON_SCHEDULE =
  /^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every ([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|([0-9A-Za-z*?/,-]+ ){4,5}[0-9A-Za-z*?/,-]+)$/;
const HOST_PORT = /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/;

export const secretKeyRefSchema = z
  .object({
    name: z.string().min(1).max(253).regex(DNS_SUBDOMAIN).describe('Name of a Secret in the TaskApi namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/)
      .describe('Key within the Secret.'),
  })
  .strict()
  .describe('A key of a Secret in the same namespace. Only the reference is stored here, never the value.');
export type SecretKeyRef = z.infer<typeof secretKeyRefSchema>;

const quantitySchema = z
  .union([z.string().regex(QUANTITY), z.number().int().nonnegative()])
  .meta({ 'x-kubernetes-int-or-string': true });

/** A quantity's sign: its pattern (Kubernetes' own) takes '-1' and the integer form -1; no resource is negative. */
const notNegative = (field: 'cpu' | 'memory'): CelRule => ({
  rule: `!has(self.${field}) || !string(self.${field}).startsWith('-')`,
  message: `${field} must not be negative`,
  fieldPath: `.${field}`,
  reason: 'FieldValueInvalid',
});

const resourceListSchema = z
  .object({
    cpu: quantitySchema.optional().describe('CPU, as a Kubernetes quantity (for example 100m or 1).'),
    memory: quantitySchema.optional().describe('Memory, as a Kubernetes quantity (for example 128Mi).'),
  })
  .strict()
  .meta(celRules(notNegative('cpu'), notNegative('memory')));

export const resourcesSchema = z
  .object({
    requests: resourceListSchema.optional().describe('Resources reserved for the container.'),
    limits: resourceListSchema.optional().describe('Most resources the container may use.'),
  })
  .strict()
  .describe('CPU and memory requests and limits.');
export type Resources = z.infer<typeof resourcesSchema>;

export const redisSettingsSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .max(300)
      .regex(HOST_PORT)
      .describe('Redis address as host:port, for example redis.backends.svc.cluster.local:6379.'),
    passwordSecretRef: secretKeyRefSchema
      .optional()
      .describe('Secret key holding the Redis password; omit when Redis has none.'),
    enableTLS: z.boolean().default(false).describe('Connect to Redis over TLS.'),
  })
  .strict();
export type RedisSettings = z.infer<typeof redisSettingsSchema>;

export const postgresqlSettingsSchema = z
  .object({
    connectionStringSecretRef: secretKeyRefSchema.describe(
      'Secret key holding the libpq connection string (host=... user=... password=... dbname=...). ' +
        'It carries the password, so it is only ever referenced, never written in the spec.',
    ),
    tableName: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z_][a-z0-9_]*$/)
      .optional()
      .describe('Table the state store keeps tasks in; Dapr creates it. Defaults to Dapr\'s "state".'),
  })
  .strict();
export type PostgresqlSettings = z.infer<typeof postgresqlSettingsSchema>;

export const specSchema = z
  .object({
    image: z
      .string()
      .min(1)
      .max(512)
      .describe('Container image of the task service (the notification service uses it too).'),
    replicas: z.number().int().min(0).max(100).default(1).describe('Number of task service pods.'),
    appPort: z
      .number()
      .int()
      .min(1024)
      .max(65535)
      .default(3000)
      .describe('Port the task service listens on inside the pod.'),
    stateBackend: z
      .enum(STATE_BACKENDS)
      .default('redis')
      .describe(
        'State store the task service uses: redis or postgresql. Changing it moves the running service to the ' +
          'other store and copies every task there while the service keeps serving (status.swap shows the phase ' +
          'and progress); status.stateBackend shows the store that is the source of truth.',
      ),
    redis: redisSettingsSchema.optional().describe('Redis connection, for the redis state store and for pub/sub.'),
    postgresql: postgresqlSettingsSchema.optional().describe('PostgreSQL connection, for the postgresql state store.'),
    pubsub: z
      .object({
        topic: z
          .string()
          .min(1)
          .max(249)
          .regex(/^[a-zA-Z0-9._-]+$/)
          .optional()
          .describe(
            'Topic task events (task.created, task.completed, task.deleted) are published to. Default: ' +
              "<namespace>.<name>, so TaskApis sharing a Redis never receive one another's events.",
          ),
        redis: redisSettingsSchema.optional().describe('Redis for pub/sub, when it is not spec.redis.'),
      })
      .strict()
      .default({})
      .describe('Pub/sub for task events; always Redis (streams).'),
    notifications: z
      .object({
        appId: z
          .string()
          .min(1)
          .max(63)
          .regex(DNS_LABEL)
          .describe('Dapr app-id of the service told about completed tasks.'),
        deploy: z
          .boolean()
          .default(false)
          .describe('Also run the notification service (same image) under that app-id.'),
      })
      .strict()
      .optional()
      .describe('Where completed tasks are announced, through Dapr service invocation.'),
    apiTokenSecretRef: secretKeyRefSchema
      .optional()
      .describe('Secret key holding a bearer token the write routes require; omit for an open API.'),
    dapr: z
      .object({
        logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe("The Dapr sidecar's log level."),
        enableApiLogging: z.boolean().default(false).describe('Log every Dapr API call the service makes.'),
        sidecarResources: resourcesSchema.optional().describe('CPU and memory for the Dapr sidecar.'),
      })
      .strict()
      .default({ logLevel: 'info', enableApiLogging: false })
      .describe('Dapr sidecar settings.'),
    resources: resourcesSchema.optional().describe('CPU and memory for the task service container.'),
    settings: z
      .object({
        store: redisSettingsSchema.describe(
          'Redis holding the settings (a Dapr configuration.redis Component): keys notifications-enabled, ' +
            'max-page-size and read-only, read at start and followed as they change. Its keyspace ' +
            'notifications must be on (notify-keyspace-events KA). One Redis, or one database, per TaskApi.',
        ),
      })
      .strict()
      .optional()
      .describe('Live settings through the Dapr Configuration API; without them, the defaults apply.'),
    overdueSweep: z
      .object({
        schedule: z
          .string()
          .min(1)
          .max(100)
          .regex(CRON_SCHEDULE)
          .describe(
            'When the sweep runs: a cron expression (5 fields, or 6 with seconds first), a descriptor such as ' +
              '@hourly, or @every with a duration (for example @every 5m).',
          ),
      })
      .strict()
      .optional()
      .describe(
        'A periodic sweep for overdue tasks (a Dapr cron binding): each run publishes task.overdue once for every ' +
          'task past its due date and not completed. Without it, no sweep runs.',
      ),
  })
  .strict()
  .meta(
    celRules(
      {
        rule: "self.stateBackend != 'redis' || has(self.redis)",
        message: 'spec.redis is required when spec.stateBackend is redis',
        fieldPath: '.redis',
        reason: 'FieldValueRequired',
      },
      {
        rule: "self.stateBackend != 'postgresql' || has(self.postgresql)",
        message: 'spec.postgresql is required when spec.stateBackend is postgresql',
        fieldPath: '.postgresql',
        reason: 'FieldValueRequired',
      },
      {
        rule: 'has(self.redis) || has(self.pubsub.redis)',
        message: 'pub/sub needs Redis: set spec.redis or spec.pubsub.redis',
        fieldPath: '.pubsub',
        reason: 'FieldValueRequired',
      },
    ),
  )
  .describe('Desired state of the task service.');
export type TaskApiSpec = z.infer<typeof specSchema>;
/** A spec as written by a user, before defaults. */
export type TaskApiSpecInput = z.input<typeof specSchema>;

export const conditionSchema = z.object({
  type: z.string().describe('Ready, Progressing or Degraded.'),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().describe('One CamelCase word a program can match on.'),
  message: z.string().describe('What a person needs to know.'),
  observedGeneration: z.number().int().optional().describe('The spec generation this condition describes.'),
  lastTransitionTime: z.string().describe('When status last changed (RFC 3339).'),
});
export type Condition = z.infer<typeof conditionSchema>;

export const statusSchema = z
  .object({
    observedGeneration: z.number().int().optional().describe('The spec generation the operator last acted on.'),
    stateBackend: z
      .enum(STATE_BACKENDS)
      .optional()
      .describe('State store that is the source of truth for the tasks. During a swap, changes at the flip.'),
    replicas: z.number().int().optional().describe('Task service pods, from the Deployment.'),
    readyReplicas: z.number().int().optional().describe('Ready task service pods, from the Deployment.'),
    replicaSummary: z.string().optional().describe('ready/desired pods, for kubectl get.'),
    stateGeneration: z
      .string()
      .optional()
      .describe('Layout generation of the tasks in that store: "0", or the one the last swap into it built.'),
    swap: z
      .object({
        from: z.enum(STATE_BACKENDS),
        to: z.enum(STATE_BACKENDS),
        phase: z.enum(SWAP_PHASES),
        message: z.string().optional().describe('Why the swap cannot go on right now.'),
        fromGeneration: z.string().optional(),
        toGeneration: z.string().optional(),
        revision: z.number().int().optional().describe('The last plan revision sent to the pods.'),
        copied: z.number().int().optional().describe('Index entries the copier has walked.'),
        total: z.number().int().optional().describe('About how many entries there are to walk.'),
        progress: z.string().optional().describe('copied/total, for kubectl get -o wide.'),
        longestFenceMs: z.number().int().optional().describe('The longest write fence of the flip, in ms.'),
        flipRetries: z.number().int().optional(),
        jobs: z.number().int().optional(),
        plan: z
          .string()
          .optional()
          .describe('The plan the pods were last given (JSON), so a restarted operator goes on from it.'),
        instances: z
          .array(z.string())
          .optional()
          .describe('Task pod processes that have mirrored; one gone before the flip starts the copy again.'),
      })
      .optional()
      .describe('Progress of a state store change: phase, copied/total, and why it waits, if it does.'),
    conditions: z
      .array(conditionSchema)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
      .describe('Ready, Progressing and Degraded.'),
  })
  .describe('Observed state, written by the operator.');
export type TaskApiStatus = z.infer<typeof statusSchema>;

/** Root-level rules: the only place CEL can see metadata.name. */
export const rootRules = celRules(
  {
    rule: "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40",
    message:
      'metadata.name must be a lowercase DNS label of at most 40 characters (it names the Service and the Dapr app-id)',
    reason: 'FieldValueInvalid',
  },
  {
    rule: '!has(self.spec.notifications) || self.spec.notifications.appId != self.metadata.name',
    message: "spec.notifications.appId must differ from metadata.name, the task service's own app-id",
    fieldPath: '.spec.notifications.appId',
    reason: 'FieldValueInvalid',
  },
);

/** Parses a spec, applying defaults; throws a ZodError naming the field when it is invalid. */
export function parseSpec(input: unknown): TaskApiSpec {
  return specSchema.parse(input);
}
