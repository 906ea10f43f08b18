"""A real MLflow model registry for integration tests: sqlite in a temp dir, offline, fast.

Each version is a real pyfunc model whose `predict` returns its own version string, so a test can
prove which version `models:/<name>@champion` serves by loading and calling it, as a serving
system would. The models use MLflow's "models from code": the model class lives in a small
source file stored with each version, so loading needs neither this module nor `tests` importable
(a worker in another process can load them too).

Lineage: `trained_on` gives versions a source run that logged datasets as inputs
(`mlflow.log_input`, as a training job does), so "which versions were trained on this data" is
answered by MLflow itself; `add_model` puts more models into the same registry.

Speed: creating an MLflow sqlite database runs its schema migrations (~1.5 s), so this module
migrates one template database per process and copies it for each registry; a registry with
three versions then takes well under a second.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.data.numpy_dataset import from_numpy
from mlflow.tracking import MlflowClient

MODEL_CODE = textwrap.dedent(
    '''
    """A model that answers every input with its registry version (set in model_config)."""

    from mlflow.models import set_model
    from mlflow.pyfunc import PythonModel


    class VersionModel(PythonModel):
        def load_context(self, context):
            self.version = str(context.model_config["version"])

        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return [self.version for _ in model_input]


    set_model(VersionModel())
    '''
)

_template: Path | None = None


def _template_db() -> Path:
    """An empty, migrated MLflow sqlite database, made once per process."""
    global _template
    if _template is None:
        root = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        db = root / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_registered_models()
        _template = db
    return _template


@dataclass(frozen=True)
class RegistryFixture:
    root: Path
    tracking_uri: str
    name: str
    versions: list[str]
    digests: dict[str, str] = field(default_factory=dict)  # dataset name -> MLflow's digest

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def alias(self, alias: str = "champion") -> str | None:
        version = self.client().get_registered_model(self.name).aliases.get(alias)
        return None if version is None else str(version)

    def predict(self, alias: str = "champion") -> str:
        """Load `models:/<name>@<alias>` as pyfunc, as serving would, and ask it its version."""
        before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            model = mlflow.pyfunc.load_model(f"models:/{self.name}@{alias}")
            answer: Any = model.predict(["which version?"])
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])
        return str(answer[0])


def dataset(name: str) -> Any:
    """A small numpy dataset named `name`; its digest depends on the name (so on its content)."""
    seed = sum(name.encode())
    rows = np.arange(12, dtype=np.int64).reshape(4, 3) + seed
    return from_numpy(rows, source=f"s3://datasets/{name}.parquet", name=name)


def create_registry(
    root: Path,
    *,
    name: str = "fraud-detector",
    versions: int = 3,
    clean: Iterable[int] = (1,),
    version_tags: Mapping[int, Mapping[str, str]] | None = None,
    champion: int | None = 3,
    trained_on: Mapping[int, Sequence[str]] | None = None,
) -> RegistryFixture:
    """A registry in `root` holding model `name` with versions 1..N; `clean` versions carry
    `scan=clean`, `version_tags` adds more tags, `champion` (if set) gets the alias, and the
    versions in `trained_on` come from a run that logged those datasets."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    shutil.copyfile(_template_db(), db)
    uri = f"sqlite:///{db}"
    (root / "version_model.py").write_text(MODEL_CODE)
    empty = RegistryFixture(root=root, tracking_uri=uri, name=name, versions=[])
    return add_model(
        empty,
        name,
        versions=versions,
        clean=clean,
        version_tags=version_tags,
        champion=champion,
        trained_on=trained_on,
    )


def add_model(
    reg: RegistryFixture,
    name: str,
    *,
    versions: int = 3,
    clean: Iterable[int] = (1,),
    version_tags: Mapping[int, Mapping[str, str]] | None = None,
    champion: int | None = 3,
    trained_on: Mapping[int, Sequence[str]] | None = None,
) -> RegistryFixture:
    """Model `name` added to `reg`'s registry (as `create_registry` makes it); the fixture of
    that model, sharing the registry."""
    root, uri = reg.root, reg.tracking_uri
    code = root / "version_model.py"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    clean_set = set(clean)
    made: list[str] = []
    digests = dict(reg.digests)
    for n in range(1, versions + 1):
        path = root / "models" / name / f"v{n}"
        mlflow.pyfunc.save_model(
            str(path), python_model=str(code), model_config={"version": str(n)}, pip_requirements=[]
        )
        tags = dict((version_tags or {}).get(n, {}))
        if n in clean_set:
            tags["scan"] = "clean"
        inputs = (trained_on or {}).get(n)
        run_id = None if inputs is None else _training_run(uri, root, inputs, digests)
        version = client.create_model_version(name, source=str(path), tags=tags, run_id=run_id)
        made.append(str(version.version))
    if champion is not None:
        client.set_registered_model_alias(name, "champion", str(champion))
    return RegistryFixture(root=root, tracking_uri=uri, name=name, versions=made, digests=digests)


def _training_run(uri: str, root: Path, inputs: Sequence[str], digests: dict[str, str]) -> str:
    """A run that logs `inputs` as training datasets, as a training job would; its id."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name("training")
    experiment = (
        found.experiment_id
        if found is not None
        else client.create_experiment("training", artifact_location=str(root / "artifacts"))
    )
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            for name in inputs:
                ds = dataset(name)
                digests[name] = ds.digest
                mlflow.log_input(ds, context="training")
    finally:
        mlflow.set_tracking_uri(before)
    return str(run.info.run_id)
