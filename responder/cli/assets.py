"""`responder assets ...`: sync the asset graph, show an asset, its lineage, check the files.

Everything shown comes from a registry or a file someone else wrote: it is printed without
markup and with control characters replaced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.assets.declared import load_declared
from responder.assets.graph import MAX_DEPTH, MAX_NODES, AssetGraph
from responder.assets.lineage import LineageIndex
from responder.assets.model import Edge, display_name, printable
from responder.assets.store import export_claims, graph_from_claims, load_graph
from responder.cli.console import err, out
from responder.cli.definitions import report
from responder.cli.options import fail
from responder.yamlfiles import YamlFileError

assets_app = typer.Typer(
    help="AI assets: lineage and blast radius from MLflow and assets/*.yaml.",
    no_args_is_help=True,
)

AssetId = Annotated[
    str,
    typer.Argument(
        help="an asset id (model_version:fraud-detector/3, endpoint:fraud-api, ...) or a name "
        "that only one asset has"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
AssetsDir = Annotated[
    Path | None,
    typer.Option("--dir", help="declared assets directory (default: RESPONDER_ASSETS__DIR)"),
]


def say(text: str) -> None:
    """Print text someone else wrote: no markup, control characters replaced, line by line."""
    for line in text.split("\n"):
        out.print(printable(line), markup=False, highlight=False, soft_wrap=True)


def _graph() -> AssetGraph:
    with Session(bootstrap.services().engine) as session:
        return load_graph(session)


def resolve(graph: AssetGraph, given: str) -> str:
    """An id, or the one asset whose name is `given`; exit 1 listing the choices otherwise."""
    if given in graph:
        return given
    matches = sorted(n.id for n in graph.nodes() if display_name(n.id) == given or n.name == given)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise fail(f"{printable(given)!r} names {len(matches)} assets: {', '.join(matches)}")
    raise fail(f"no asset {printable(given)!r} (run `responder assets sync` first?)")


MAX_EXPORT_BYTES = 512 * 1024 * 1024


def offline_lineage(path: Path) -> LineageIndex:
    """The lineage index `replay --assets PATH` routes with: an export of the stored graph
    (`responder assets export`, a file) or declared assets (a directory of *.yaml); exit 1
    saying what is wrong."""
    from datetime import UTC, datetime

    if path.is_file():
        if path.stat().st_size > MAX_EXPORT_BYTES:
            raise fail(f"{printable(str(path))}: larger than {MAX_EXPORT_BYTES} bytes")
        try:
            return LineageIndex(graph_from_claims(json.loads(path.read_bytes())))
        except (ValueError, RecursionError) as exc:  # bad JSON, not an export
            raise fail(f"{printable(str(path))}: {printable(str(exc)[:200])}") from None
    if not path.is_dir():
        raise fail(f"{printable(str(path))}: no such file or directory")
    try:
        loaded = load_declared(path, datetime.now(UTC))
    except YamlFileError as exc:
        raise report(exc) from None
    nodes = [n for part in loaded for n in part.nodes]
    edges = [e for part in loaded for e in part.edges]
    return LineageIndex(AssetGraph(nodes, edges))


@assets_app.command("export")
def assets_export(
    file: Annotated[Path, typer.Argument(help="where to write the JSON (`-`: stdout)")],
) -> None:
    """Write every stored claim (registry, files, webhooks) as JSON, for `replay --assets FILE`."""
    with Session(bootstrap.services().engine) as session:
        data = json.dumps(export_claims(session), ensure_ascii=False)
    if str(file) == "-":
        sys.stdout.write(data + "\n")
        return
    file.write_text(data + "\n", encoding="utf-8")
    err.print(f"wrote {printable(str(file))}", markup=False, highlight=False)


@assets_app.command("sync")
def assets_sync(directory: AssetsDir = None) -> None:
    """Read the MLflow registry and the declared files into the database, once."""
    overrides: dict[str, Any] = {"assets": {"dir": directory}} if directory else {}
    app = bootstrap.services(overrides)
    try:
        result = app.asset_sync().run_once()
    except Exception as exc:  # the registry unreachable, a permission error: nothing written
        raise fail(f"sync failed, nothing written: {type(exc).__name__}: {exc}") from None
    for warning in result.warnings:
        err.print(f"warning: {printable(warning)}", markup=False, highlight=False)
    for source, (nodes, edges) in result.written.items():
        say(f"{source}: {nodes} assets, {edges} edges")
    for source in result.dropped:
        say(f"{source}: gone, forgotten")
    if result.forgotten:
        say(f"webhook: {result.forgotten} claims superseded by the registry")
    for item in result.skipped:
        err.print(f"skipped {printable(item)}", markup=False, highlight=False)
    if result.truncated:
        err.print("the registry is larger than the sync limits (RESPONDER_ASSETS__MAX_*)")
    say(f"synced in {result.seconds:.2f}s (registry {result.registry_seconds:.2f}s)")
    if result.errors:
        err.print("declared assets are invalid; their previous state is kept:")
        raise report(YamlFileError(result.errors))


@assets_app.command("show")
def assets_show(asset: AssetId, as_json: AsJson = False) -> None:
    """One asset: its kind, tier, tags, attributes, sources and edges in and out."""
    graph = _graph()
    node_id = resolve(graph, asset)
    found = graph.node(node_id)
    assert found is not None
    outgoing, incoming = graph.edges_of(node_id)
    if as_json:
        data = {
            "node": found.to_json(),
            "out": [e.to_json() for e in outgoing],
            "in": [e.to_json() for e in incoming],
        }
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    say(f"{found.id}  ({found.kind.value})")
    say(f"  name: {found.name}")
    if found.tier:
        say(f"  tier: {found.tier}")
    say(f"  sources: {', '.join(found.sources) or 'none (only referred to)'}")
    for title, values in (("tags", found.tags), ("attributes", found.attributes)):
        if values:
            say(f"  {title}:")
            for key, value in sorted(values.items()):
                say(f"    {key}: {value}")
    if outgoing:
        say("  depends on:")
        for e in outgoing:
            say(f"    {e.kind.value} → {e.dst}  {_provenance(e)}")
    if incoming:
        say("  depended on by:")
        for e in incoming:
            say(f"    {e.src} {e.kind.value} →  {_provenance(e)}")


def _provenance(e: Edge) -> str:
    extra = "".join(f"; {k}={v}" for k, v in sorted(e.attributes.items()))
    return f"({', '.join(e.sources)}{extra})"


@assets_app.command("graph")
def assets_graph(
    asset: AssetId,
    depth: Annotated[int, typer.Option(min=1, max=50, help="hops at most")] = MAX_DEPTH,
    max_nodes: Annotated[int, typer.Option(min=1, max=100_000, help="assets at most")] = MAX_NODES,
    blast: Annotated[
        bool, typer.Option("--blast-radius", help="only what it affects (no upstream)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """The lineage of an asset as a tree: what it affects (←) and what it is made of (→)."""
    graph = _graph()
    node_id = resolve(graph, asset)
    if blast:
        reach = graph.blast_radius([node_id], max_depth=depth, max_nodes=max_nodes)
    else:
        found = graph.lineage(node_id, max_depth=depth, max_nodes=max_nodes)
        assert found is not None
        reach = found
    if as_json:
        sys.stdout.write(json.dumps(reach.to_json(), ensure_ascii=False) + "\n")
        return
    say(graph.tree(reach))
    counts = ", ".join(f"{len(ids)} {kind.value}" for kind, ids in reach.by_kind().items())
    err.print(counts, markup=False, highlight=False)


@assets_app.command("validate")
def assets_validate(
    directory: Annotated[Path | None, typer.Argument(help="default: RESPONDER_ASSETS__DIR")] = None,
) -> None:
    """Load every declared asset file and report problems with file, line and field."""
    from datetime import UTC, datetime

    path = directory or bootstrap.load_settings().assets.dir
    try:
        loaded = load_declared(path, datetime.now(UTC))
    except YamlFileError as exc:
        raise report(exc) from None
    for part in loaded:
        kinds: dict[str, int] = {}
        for n in part.nodes:
            kinds[n.kind.value] = kinds.get(n.kind.value, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        say(f"{part.source}: {summary or 'nothing'}; {len(part.edges)} edges")
    say(f"OK: {len(loaded)} asset files in {path}")
