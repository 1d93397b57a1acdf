/** pino settings shared by both services: JSON logs, and credentials redacted wherever they could appear. */
import type { LoggerOptions } from 'pino';

/** Log messages are constants; the data goes in fields. */
export const LOG = {
  starting: 'service starting',
  listening: 'service listening',
  waitingForSidecar: 'waiting for the Dapr sidecar and its components',
  ready: 'service ready',
  stopping: 'service stopping',
  requestFailed: 'request failed',
  publishFailed: 'task event not published',
  eventHandled: 'task event handled',
  eventDropped: 'task event dropped',
  eventRetried: 'task event handling failed; asking Dapr to redeliver',
  notificationSent: 'notification sent',
  notificationRecorded: 'notification recorded',
  startupFailed: 'service failed to start',
  reminderCancelFailed: 'due-date reminder not cancelled; it will find nothing to announce',
  reminderUndoFailed: 'due-date reminder not moved back after a failed write; it fires at the later time',
  reminderFired: 'due-date reminder fired',
  reminderSkipped: 'due-date reminder fired for nothing to announce',
  reminderMoved: 'due-date reminder fired early; moved to the due date',
  jobUnknown: 'a Dapr job this service does not know fired; ignored',
  sweepDone: 'overdue sweep done',
  settingChanged: 'setting changed',
  settingIgnored: 'setting ignored: not a valid value; the last good one stays',
  settingsUnread: 'settings not read; the last ones stay',
} as const;

export function loggerOptions(level: string, service: string): LoggerOptions {
  return {
    level,
    base: { service },
    redact: {
      // Fastify logs requests without headers; these paths guard any log line that does carry them.
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'request.headers.authorization',
        'req.headers["dapr-api-token"]',
        'headers["dapr-api-token"]',
        'request.headers["dapr-api-token"]',
        'apiToken',
        'appToken',
      ],
      censor: '[redacted]',
    },
  };
}
