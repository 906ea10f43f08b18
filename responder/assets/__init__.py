"""AI assets and how they depend on each other: datasets, models, versions, aliases, endpoints,
keys, images, services and their owners, from the MLflow registry, declared `assets/*.yaml`
files and MLflow webhooks; an in-memory graph with lineage and blast-radius queries."""
