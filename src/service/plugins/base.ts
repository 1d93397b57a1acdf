/** What both services' apps start with: zod validation and serialization, the error handler, 405s and OpenAPI. */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import errorHandler from './errors.ts';
import methodNotAllowed from './method-not-allowed.ts';
import openapi from './openapi.ts';

async function apiBase(fastify: FastifyInstance, options: { title: string; description: string }): Promise<void> {
  fastify.setValidatorCompiler(validatorCompiler);
  fastify.setSerializerCompiler(serializerCompiler);
  await fastify.register(errorHandler);
  await fastify.register(methodNotAllowed);
  await fastify.register(openapi, options);
}

export default fp(apiBase, { name: 'api-base' });
