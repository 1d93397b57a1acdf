/** Entry point of the notification service (`node dist/service/notification-server.js` once compiled). */
import Fastify from 'fastify';
import { notificationServiceConfigFromEnv } from './config.ts';
import { LOG, loggerOptions } from './logging.ts';
import notificationApp from './notification-app.ts';
import { serve, SERVE_WHILE_CLOSING } from './serve.ts';

const settings = notificationServiceConfigFromEnv(process.env);
const fastify = Fastify({ logger: loggerOptions(settings.logLevel, 'notification-service'), ...SERVE_WHILE_CLOSING });
const logger = fastify.log;
logger.info(LOG.starting);
await fastify.register(notificationApp, { appToken: settings.appToken });
await serve(fastify, settings, logger);
