# The strata image: `strata worker` in docker-compose.yml, and the CLI (`docker-compose run
# strata build …`). Workers run steps with runc on overlay mounts, so the container must be
# privileged. Build from the repository root:
#   docker build -f docker/strata-worker.Dockerfile -t strata:local .

# node 22 on Debian bookworm: the same Debian packages (runc, util-linux's mount) as a host.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY activities ./activities
COPY client ./client
COPY engine ./engine
COPY worker ./worker
COPY workflows ./workflows
COPY bin ./bin
# tsc compiles test/ too (tsconfig includes it); only the build's outputs are kept below.
COPY test ./test
RUN npm run build && rm -rf dist/test

FROM node:22-bookworm-slim
# runc and mount run RUN steps, slirp4netns and iproute2 give them their network; attr reads overlay xattrs; git, xz, bzip2 and zstd serve ADD;
# ca-certificates for ADD of https URLs; openssl makes docker-compose's mTLS certificates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends runc slirp4netns iproute2 attr git xz-utils bzip2 zstd ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/strata
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund --loglevel=error
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY docker/temporal-certs.sh ./docker/temporal-certs.sh
RUN ln -s /opt/strata/bin/strata.js /usr/local/bin/strata
# The store every worker and the CLI share (a volume in docker-compose.yml).
ENV STRATA_HOME=/var/lib/strata
VOLUME /var/lib/strata
ENTRYPOINT ["strata"]
CMD ["worker"]
