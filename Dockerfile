# The wott gateway: CA + EST (HTTPS 8443), MQTT over mutual TLS (8883), scoring. State lives in /data (a volume).
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY lib lib
COPY store store
COPY protocol protocol
COPY fleet fleet
COPY policy policy
COPY ca ca
COPY broker broker
COPY agent agent
COPY scoring scoring
COPY vuln vuln
COPY grafana grafana
COPY mosquitto-compat mosquitto-compat
COPY gateway gateway
COPY api api
COPY trust trust
COPY credentials credentials
COPY audit audit
COPY report report
COPY dashboard dashboard
COPY cli cli
COPY bench bench
COPY fuzz fuzz
COPY packaging packaging
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# glibc's allocator: allocations from 64 KiB up (TLS buffers) mapped on their own, freed ones leave RSS (gateway/memory.ts)
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/package.json package.json
COPY wott.example.yaml /app/wott.example.yaml
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8443 8883
ENTRYPOINT ["node", "dist/cli/wott.js"]
CMD ["gateway", "--data", "/data", "--config", "/etc/wott/wott.yaml"]
