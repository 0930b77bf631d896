# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript and the better-sqlite3 addon in a full image, ship only
# the runtime files in a slim one that runs as a non-root user.

FROM node:20-bookworm AS build
WORKDIR /app
# better-sqlite3 compiles from source; it needs a C++ toolchain and Python for node-gyp.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY clients/ts/package.json clients/ts/package.json
RUN npm install --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The generated code and the grpc-js method table are the TypeScript client's; the broker
# compiles them from there (into dist/clients/ts/src).
COPY clients/ts/src ./clients/ts/src
RUN npx tsc -p . && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
# A bounded heap: V8 otherwise grows it lazily toward a quarter of the host's memory under a
# high allocation rate, and the container's memory limit should see a steady figure.
ENV NODE_OPTIONS="--max-old-space-size=256"
# Two malloc arenas instead of glibc's 8 per CPU: Buffers are malloc'd from several threads
# (gRPC, the MySQL driver, libuv), and spread over many arenas the freed memory stays
# fragmented and counted in RSS (about 20-50 MB less under the overload benchmark).
ENV MALLOC_ARENA_MAX=2
# Blocks of 128 KiB and more (request bodies, run bodies) straight from mmap, so freeing one
# gives it back to the kernel. glibc otherwise raises this threshold to the size of each large
# block freed, up to 32 MiB, after which such blocks come from the arenas and what they free
# stays in RSS: the overload benchmark's steady RSS ~60 MB lower, its peak ~12 MB lower
# (BENCHMARKS.md, "Round 2, seventh session").
ENV MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
# uid/gid 999 (what --system gave it before it was pinned): mounted key files and the data
# volume must be readable by this uid, so it is fixed and documented.
RUN groupadd --system --gid 999 nervebus \
  && useradd --system --uid 999 --gid nervebus --home-dir /data --shell /usr/sbin/nologin nervebus \
  && mkdir -p /data && chown nervebus:nervebus /data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/clients ./dist/clients
USER nervebus
# The embedded store lives here; mount a volume to keep it.
VOLUME ["/data"]
EXPOSE 7070
# TLS and authentication come from files mounted into the container and named by NERVEBUS_*
# variables (or by flags in a whole `serve …` command after the image name), e.g. -v ./certs:/certs:ro
# -e NERVEBUS_TLS_CERT=/certs/server.crt -e NERVEBUS_TLS_KEY=/certs/server.key
# -e NERVEBUS_AUTH_TOKENS=/certs/tokens -e NERVEBUS_AUTH_POLICY=/certs/policy.json
# -e NERVEBUS_REQUIRE_AUTH=true (see "Securing NerveBus" in the README). Without them the broker
# serves plaintext to anyone who can reach the port, and logs a warning saying so.
# SIGHUP (docker kill -s HUP) re-reads those files without a restart.
# SIGTERM drains and exits 0; give it time (see --shutdown-grace-ms).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve", "--listen", "0.0.0.0:7070", "--store", "sqlite:/data/nervebus.db"]
