# One image, three entry points; the container's args pick one (the entrypoint is node):
#   src/controller/main.ts            the operator (config/manager/manager.yaml)
#   src/service/server.ts             the task service (DEFAULT_BUILD_SETTINGS in src/controller/resources/deployment.ts)
#   src/service/notification-server.ts  the notification service
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step.

FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: the `node` package, TypeScript and the test tools are devDependencies.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# The image's unprivileged user, by number so runAsNonRoot can verify it.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["src/controller/main.ts"]
