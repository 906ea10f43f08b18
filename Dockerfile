# syntax=docker/dockerfile:1
# responder image: `docker build -t responder .`, then `docker run responder worker`
# (or `db upgrade`, `replay ...`). docker-compose.yml runs the whole stack.

# Optional extras: `docker build --build-arg EXTRAS=mlflow .` adds the MLflow client that the
# mlflow.* playbook actions need (about 1 GB, so it is not in the default image).
# Dependencies come from the hashed lock: requirements.lock, or requirements-$EXTRAS.lock
# (`make lock` writes both).
ARG EXTRAS=""

# --- build: wheels for the locked dependencies and for responder
FROM python:3.11-slim AS build
ARG EXTRAS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock alone first: this layer is rebuilt when the lock changes, not on every code change.
COPY requirements*.lock ./
RUN lock="requirements${EXTRAS:+-$EXTRAS}.lock" \
    && pip wheel --wheel-dir /wheels --require-hashes -r "$lock" \
    && cp "$lock" /wheels/requirements.lock
COPY . .
RUN pip wheel --wheel-dir /wheels --no-deps . \
    && mkdir -p /app/rules /app/playbooks \
    && if [ -d rules ]; then cp -r rules/. /app/rules/; fi \
    && if [ -d playbooks ]; then cp -r playbooks/. /app/playbooks/; fi

# --- runtime: the installed package, the rules and playbooks, a non-root user
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RESPONDER_RULES_DIR=/app/rules \
    RESPONDER_PLAYBOOKS__DIR=/app/playbooks
RUN useradd --create-home --uid 10001 --user-group responder
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels --require-hashes -r /wheels/requirements.lock \
    && pip install --no-index --no-deps /wheels/responder-*.whl
WORKDIR /app
COPY --from=build --chown=responder:responder /app/ /app/
USER responder
ENTRYPOINT ["responder"]
CMD ["worker"]
