# The provider daemon as a container. It drives the host's Docker engine through its socket:
#
#   docker run -d --name provider --restart unless-stopped \
#     --network host --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/provider:/var/lib/provider -v /etc/provider:/etc/provider:ro \
#     --pid host -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#     provider start
#
# Change the API port with -e PROVIDER_API__PORT=<port> (not only in the config file): the
# HEALTHCHECK reads it from there. It asks the plain-HTTP operator listener on loopback
# (api.operatorPort, default the API port + 1; PROVIDER_API__OPERATOR_PORT); the API port speaks TLS.
# --network host: the API port and the lease firewall rules live in the host's network namespace.
# --pid host and the cgroup mount: metering reads each lease's counters from the host's /proc and
# /sys/fs/cgroup. Root inside the container is needed for iptables; whoever can use the Docker
# socket is root on the host anyway, so a non-root user here would protect nothing.

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Dependencies first (cached while only sources change); their install scripts build
# better-sqlite3 and fetch nothing else. `prepare` (the build) runs once the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3 @foundry-rs/anvil
COPY . .
# The sqlite sources and objects are only needed to build the addon.
RUN npm run build && npm prune --omit=dev --no-audit --no-fund \
  && rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
    node_modules/better-sqlite3/build/Release/obj.target node_modules/better-sqlite3/build/Release/.deps \
    node_modules/better-sqlite3/build/Release/test_extension.node

FROM node:20-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends iptables iproute2 ca-certificates \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/provider
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/config ./config
# As root the defaults are /etc/provider/provider.yaml (optional) and /var/lib/provider.
ENV NODE_ENV=production
VOLUME ["/var/lib/provider"]
EXPOSE 8420
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "const e = process.env; fetch('http://127.0.0.1:' + (e.PROVIDER_API__OPERATOR_PORT || Number(e.PROVIDER_API__PORT || 8420) + 1) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["/opt/provider/bin/provider"]
CMD ["start"]
