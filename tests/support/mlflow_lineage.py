"""A real MLflow registry with lineage: runs that log datasets (`mlflow.log_input`), models
whose versions come from those runs, and aliases. Beside `mlflow_registry.py` (whose migrated
template database it copies), for the asset-graph tests.

The default plan: datasets `transactions` and `chargebacks`; `fraud-detector` v1 trained on
transactions, v2 on both, v3 on chargebacks (@champion -> 2, @challenger -> 3); `churn-model`
v1 on chargebacks (@champion -> 1); `credit-scorer` v1 on transactions (@champion -> 1) and v2
with no run (registered from a path). Versions are registry entries only (no artifacts): the
graph reads metadata, never models.

`fraud_and_churn` is the servable registry of the poisoning playbook tests instead
(`mlflow_registry.py`: versions that load and answer with their version).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.data.numpy_dataset import from_numpy
from mlflow.tracking import MlflowClient

from tests.support.mlflow_registry import RegistryFixture, _template_db, add_model, create_registry

DATASETS: Mapping[str, str] = {
    "transactions": "s3://datasets/transactions/2026-11.parquet",
    "chargebacks": "s3://datasets/chargebacks/2026-11.parquet",
}
# model -> versions in order, each the datasets its run logged (None: no run at all)
PLAN: Mapping[str, Sequence[Sequence[str] | None]] = {
    "fraud-detector": [["transactions"], ["transactions", "chargebacks"], ["chargebacks"]],
    "churn-model": [["chargebacks"]],
    "credit-scorer": [["transactions"], None],
}
ALIASES: Mapping[str, Mapping[str, int]] = {
    "fraud-detector": {"champion": 2, "challenger": 3},
    "churn-model": {"champion": 1},
    "credit-scorer": {"champion": 1},
}


@dataclass(frozen=True)
class LineageRegistry:
    root: Path
    tracking_uri: str
    digests: Mapping[str, str]  # dataset name -> digest MLflow computed
    runs: Mapping[tuple[str, int], str]  # (model, version) -> run id

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


def _dataset(name: str, seed: int) -> Any:
    rows = np.arange(12, dtype=np.int64).reshape(4, 3) + seed
    return from_numpy(rows, source=DATASETS[name], name=name)


def create_lineage_registry(
    root: Path,
    *,
    plan: Mapping[str, Sequence[Sequence[str] | None]] = PLAN,
    aliases: Mapping[str, Mapping[str, int]] = ALIASES,
) -> LineageRegistry:
    """Build the registry in `root`: one run per version that logs its datasets as training
    inputs through the fluent `mlflow.log_input`, then the version registered from that run."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    shutil.copyfile(_template_db(), db)
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("lineage", artifact_location=str(root / "artifacts"))
    datasets = {name: _dataset(name, seed) for seed, name in enumerate(DATASETS)}
    runs: dict[tuple[str, int], str] = {}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        for model, versions in plan.items():
            client.create_registered_model(model, tags={"team": "ml"})
            for number, inputs in enumerate(versions, start=1):
                if inputs is None:
                    client.create_model_version(model, source=str(root / "models" / model))
                    continue
                with mlflow.start_run(experiment_id=experiment) as run:
                    for name in inputs:
                        mlflow.log_input(datasets[name], context="training")
                made = client.create_model_version(
                    model, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
                )
                assert int(made.version) == number
                runs[(model, number)] = run.info.run_id
            for alias, version in aliases.get(model, {}).items():
                client.set_registered_model_alias(model, alias, str(version))
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    return LineageRegistry(
        root=root,
        tracking_uri=uri,
        digests={name: ds.digest for name, ds in datasets.items()},
        runs=runs,
    )


def fraud_and_churn(
    root: Path, *, churn_trained_on: Mapping[int, Sequence[str]]
) -> tuple[RegistryFixture, RegistryFixture]:
    """(fraud-detector, churn-model) in one servable registry, every version scanned clean:
    fraud-detector v1..v4 (@champion -> 4; v3 and v4 trained on transactions, v2 on
    chargebacks, v1 on nothing), churn-model v1..v2 (@champion -> 2) trained on
    `churn_trained_on` (version -> dataset names)."""
    fraud = create_registry(
        root,
        versions=4,
        clean=(1, 2, 3, 4),
        champion=4,
        trained_on={4: ["transactions"], 3: ["transactions"], 2: ["chargebacks"], 1: []},
    )
    churn = add_model(
        fraud, "churn-model", versions=2, clean=(1, 2), champion=2, trained_on=churn_trained_on
    )
    return fraud, churn
