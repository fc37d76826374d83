# envoy-oidc-authz: build with the full toolchain, ship only the compiled server and its
# production dependencies, run as the unprivileged `node` user (uid 1000).
#   docker build -t envoy-oidc-authz .
#   docker run -v $PWD/config.yaml:/etc/envoy-oidc-authz/config.yaml envoy-oidc-authz

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# No compiler here: the slim image has none, and no dependency needs one at install time.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY proto ./proto
COPY --from=build /app/dist/src ./dist/src
USER node
# gRPC ext_authz and health, HTTP ext_authz, admin (/healthz, /readyz, /metrics).
EXPOSE 9001 9002 9090
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--config", "/etc/envoy-oidc-authz/config.yaml"]
