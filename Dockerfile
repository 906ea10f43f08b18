# syntax=docker/dockerfile:1
# responder image: `docker build -t responder .`, then `docker run responder worker`
# (or `db upgrade`, `replay ...`). docker-compose.yml runs the whole stack.

# Optional extras: `docker build --build-arg EXTRAS=mlflow .` adds the MLflow client that the
# mlflow.* playbook actions need (about 1 GB, so it is not in the default image).
ARG EXTRAS=""

# --- build: wheels for responder and its dependencies (`pip install .` in two steps)
FROM python:3.11-slim AS build
ARG EXTRAS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}" \
    && mkdir -p /app/rules /app/playbooks \
    && if [ -d rules ]; then cp -r rules/. /app/rules/; fi \
    && if [ -d playbooks ]; then cp -r playbooks/. /app/playbooks/; fi

# --- runtime: the installed package, the rules and playbooks, a non-root user
FROM python:3.11-slim
ARG EXTRAS
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RESPONDER_RULES_DIR=/app/rules \
    RESPONDER_PLAYBOOKS__DIR=/app/playbooks
RUN useradd --create-home --uid 10001 --user-group responder
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "responder${EXTRAS:+[$EXTRAS]}"
WORKDIR /app
COPY --from=build --chown=responder:responder /app/ /app/
USER responder
ENTRYPOINT ["responder"]
CMD ["worker"]
