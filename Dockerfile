# One image, three entry points; the container's args pick one (the entrypoint is node):
#   dist/controller/main.js             the operator (config/manager/manager.yaml)
#   dist/service/server.js              the task service (DEFAULT_BUILD_SETTINGS in src/controller/resources/deployment.ts)
#   dist/service/notification-server.js the notification service
# The sources are compiled: Node could strip types itself, but that loads a
# compiler worth ~17 MiB of resident memory in every process.

# The base is an argument so the test bed can build this file on a Node image of
# its own, made from Debian's packages (testbed/harness/images.ts).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency would download a second Node; the image's serves.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: the `node` package, TypeScript and the test tools are devDependencies.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
# The image's unprivileged user, by number so runAsNonRoot can verify it.
USER 1000:1000
ENTRYPOINT ["node"]
# The operator's Node flags, written here from config/manager/manager.yaml by `npm run generate`.
CMD ["--optimize-for-size", "--max-semi-space-size=1", "--max-old-space-size=128", "--no-opt", "--no-maglev", "dist/controller/main.js"]
