"""``shipyard models``: list, show, register, alias and audit registered models.

Errors: a malformed name, alias, spec, metric or address exits 2 (usage); a model, version,
alias, run or artifact that does not exist, or a store problem, exits 1. Nothing here unpickles
a model.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.cli._common import exits, make_console
from shipyard.registry import (
    ModelSpecError,
    ModelVersion,
    Registry,
    RegistryError,
    Signature,
    parse_spec,
)

#: malformed input exits 2, everything else 1
_friendly = exits(usage=(ModelSpecError,), runtime=(RegistryError,))


def _console() -> Console:
    return make_console()


def _when(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={_number(v)}" for k, v in sorted(metrics.items())) or "-"


def _parse_metric(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        return key.strip(), float(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not NAME=NUMBER, e.g. --metric auc=0.91", param_hint="--metric"
        ) from None


@click.group("models")
def models_group() -> None:
    """Registered models: versions, aliases, lineage, the audit log.

    \b
    A model is named `name` (its latest version), `name:3` or `name@alias`.
    Examples:
      shipyard models list
      shipyard models show ranker
      shipyard models alias ranker 3 prod
    """


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def list_command(as_json: bool) -> None:
    """Each model with its latest version, aliases and latest metrics."""
    summaries = Registry().list_models()
    if as_json:
        rows = [
            {"name": s.name, "versions": s.versions, "aliases": s.aliases, **_latest(s.latest)}
            for s in summaries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    console = _console()
    if not summaries:
        console.print(
            "no models registered yet: call current.register_model(...) in a step, or "
            "`shipyard models register Flow/run/step/task:artifact --name NAME`"
        )
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "latest", "versions", "aliases", "latest metrics", "registered"):
        table.add_column(column)
    for s in summaries:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(s.aliases.items())) or "-"
        table.add_row(
            escape(s.name),
            str(s.latest.version),
            str(s.versions),
            escape(aliases),
            escape(_metrics_text(s.latest.metrics)),
            _when(s.latest.created_at),
        )
    console.print(table)


def _latest(version: ModelVersion) -> dict[str, Any]:
    return {"latest": version.version, "metrics": version.metrics, "lineage": version.lineage}


@models_group.command("show")
@click.argument("spec", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def show_command(spec: str, as_json: bool) -> None:
    """Every version of a model, metrics side by side; or one version in detail.

    \b
    Examples:
      shipyard models show ranker          # one row per version
      shipyard models show ranker@prod     # that version: lineage, libraries, inputs
    """
    parsed = parse_spec(spec)
    registry = Registry()
    if parsed.version is None and parsed.alias is None and ":" not in spec and "@" not in spec:
        versions = registry.versions(parsed.name)
        if as_json:
            click.echo(json.dumps([v.to_json() for v in versions], indent=2))
        else:
            _console().print(_versions_table(parsed.name, versions))
        return
    version = registry.get(parsed)
    if as_json:
        click.echo(json.dumps(version.to_json(), indent=2))
    else:
        _show_version(_console(), version)


def _versions_table(name: str, versions: list[ModelVersion]) -> Table:
    metric_names = sorted({m for v in versions for m in v.metrics})
    table = Table(title=f"model {escape(name)}", title_justify="left", box=None, pad_edge=False)
    table.add_column("version", justify="right")
    table.add_column("aliases")
    for metric in metric_names:
        table.add_column(escape(metric), justify="right")
    for column in ("tags", "lineage", "user", "registered"):
        table.add_column(column)
    table.add_column("inputs", justify="right")
    for v in reversed(versions):  # newest first
        table.add_row(
            str(v.version),
            escape(", ".join(v.aliases)) or "-",
            *(_number(v.metrics[m]) if m in v.metrics else "-" for m in metric_names),
            escape(", ".join(v.tags)) or "-",
            escape(v.lineage),
            escape(v.user),
            _when(v.created_at),
            str(len(v.signature)) if v.signature is not None else "-",
        )
    return table


def _show_version(console: Console, v: ModelVersion) -> None:
    libraries = ", ".join(f"{k} {val}" for k, val in sorted(v.libraries.items()))
    rows = [
        ("model", v.spec),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("metrics", _metrics_text(v.metrics)),
        ("tags", ", ".join(v.tags) or "-"),
        ("lineage", v.lineage),
        ("project", f"{v.project} (branch {v.project_branch})" if v.project else "-"),
        ("type", v.artifact.type_name),
        ("preview", v.artifact.preview),
        ("blob", f"{v.artifact.key} ({v.artifact.size} bytes, {v.artifact.encoding})"),
        ("libraries", libraries or "- (not recorded)"),
        ("registered", f"{_when(v.created_at)} by {v.user}"),
        ("inputs", _inputs_text(v.signature)),
    ]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, escape(value))
    console.print(table)
    if v.signature is not None and v.signature.columns:
        console.print()
        console.print(_signature_table(v.signature))


def _inputs_text(signature: Signature | None) -> str:
    if signature is None:
        return (
            "- (no signature recorded: requests cannot be checked against it; register with "
            "signature=... or a fitted scikit-learn model)"
        )
    count = len(signature)
    what = f"{count} column" + ("" if count == 1 else "s")
    unnamed = "" if signature.named else ", unnamed: rows are lists in this order"
    fs = signature.feature_set
    trained = f"; feature set {fs['name']} version {fs['version']}" if fs else ""
    return f"{what} (from {signature.source}{unnamed}){trained}"


def _signature_table(signature: Signature) -> Table:
    table = Table(box=None, pad_edge=False, title="inputs", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("column")
    table.add_column("type")
    for position, column in enumerate(signature.columns):
        table.add_row(str(position), escape(column.name), escape(column.type_text))
    return table


@models_group.command("register")
@click.argument("address", metavar="FLOW/RUN/STEP/TASK:ARTIFACT")
@click.option("--name", "-n", "name", required=True, help="The model's name, e.g. ranker.")
@click.option("--metric", "-m", "metrics", multiple=True, metavar="NAME=NUMBER")
@click.option("--tag", "-t", "tags", multiple=True, metavar="TAG")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="NAME[:DTYPE]",
    help="An input column, in order (dtype: float, int, bool, str or any; default any).",
)
@_friendly
def register_command(
    address: str,
    name: str,
    metrics: tuple[str, ...],
    tags: tuple[str, ...],
    inputs: tuple[str, ...],
) -> None:
    """Register a task's artifact as the next version of a model (nothing is unpickled).

    Library versions are recorded only if the task recorded them; otherwise none, and
    loading this version cannot warn about mismatched libraries.

    \b
    Example:
      shipyard models register RankerFlow/12/pick/40:model --name ranker -m ndcg=0.41
      shipyard models register IrisFlow/3/end/9:model -n iris -i sepal_length:float ...
    """
    parsed = dict(_parse_metric(m) for m in metrics)
    signature = _parse_inputs(inputs) if inputs else None
    version = Registry().register_artifact(
        address, name, metrics=parsed, tags=list(tags), signature=signature
    )
    click.echo(f"registered {version.spec} from {version.lineage}")


def _parse_inputs(inputs: tuple[str, ...]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for text in inputs:
        column, _, dtype = text.partition(":")
        if not column.strip() or column.strip() in columns:
            raise click.BadParameter(
                f"{text!r} is not NAME[:DTYPE] with a new name, e.g. --input sepal_length:float",
                param_hint="--input",
            )
        columns[column.strip()] = dtype.strip() or "any"
    return columns


@models_group.command("alias")
@click.argument("args", nargs=-1, metavar="NAME VERSION ALIAS")
@click.option("--delete", is_flag=True, help="Remove the alias: NAME ALIAS --delete.")
@_friendly
def alias_command(args: tuple[str, ...], delete: bool) -> None:
    """Point an alias (prod, canary, ...) at a version, moving it if it exists; audited.

    \b
    Examples:
      shipyard models alias ranker 3 prod
      shipyard models alias ranker latest canary
      shipyard models alias ranker prod --delete
    """
    registry = Registry()
    if delete:
        if len(args) not in (2, 3):
            raise click.UsageError("expected NAME ALIAS --delete, e.g. ranker prod --delete")
        name, alias = args[0], args[-1]
        if len(args) == 3:  # NAME VERSION ALIAS --delete: only if it points there
            current = registry.get(f"{name}@{alias}").version
            if str(current) != args[1]:
                raise click.ClickException(
                    f"{name}@{alias} points at version {current}, not {args[1]}; not deleted"
                )
        old = registry.delete_alias(name, alias)
        click.echo(f"deleted {name}@{alias} (was version {old})")
        return
    if len(args) != 3:
        raise click.UsageError(
            "expected NAME VERSION ALIAS, e.g. shipyard models alias ranker 3 prod"
        )
    name, version_text, alias = args
    if version_text == "latest":
        version = registry.get(name).version
    elif version_text.isdigit():
        version = int(version_text)
    else:
        raise click.BadParameter(
            f"{version_text!r} is not a version number (or 'latest')", param_hint="VERSION"
        )
    before = registry.set_alias(name, version, alias)
    if before is None:
        click.echo(f"{name}@{alias} -> version {version}")
    elif before == version:
        click.echo(f"{name}@{alias} already points at version {version}")
    else:
        click.echo(f"{name}@{alias} moved: version {before} -> {version}")
    following = _following(name, alias)
    for service, deployed, pinned in still_serving(name, alias, version):
        if service in following:
            click.echo(
                f"deployment {service} (v{deployed}) follows {name}@{alias}: its host rolls "
                f"it from {pinned} to version {version} (shipyard deployments {service})"
            )
            continue
        click.echo(
            f"deployment {service} (v{deployed}) still serves {pinned}: it pinned "
            f"{name}@{alias} when deployed; deploy it again (shipyard deploy FILE.py:Class "
            f"--name {service} --model {name}@{alias}) to serve version {version}, or with "
            f"--follow {name}@{alias} to follow it from now on"
        )


@models_group.command("audit")
@click.argument("name", required=False)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@_friendly
def audit_command(name: str | None, limit: int) -> None:
    """Who registered versions, moved aliases and deployed (or rolled back) services, and
    when (newest first). For one model, the deploys that pinned one of its versions are shown
    as its entries: "to" is the version deployed, "alias" the alias it was pinned through.

    \b
    Examples:
      shipyard models audit ranker
      shipyard models audit -n 20
    """
    entries = Registry().audit(name, limit=limit)
    console = _console()
    if not entries:
        console.print("the audit log is empty" + (f" for {name}" if name else ""))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("when", "user", "action", "model", "alias", "from", "to", "detail"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            _when(e.at),
            escape(e.user),
            e.action,
            escape(e.model or "-"),
            escape(e.alias or "-"),
            str(e.from_version) if e.from_version is not None else "-",
            str(e.to_version) if e.to_version is not None else "-",
            escape(e.summary),
        )
    console.print(table)


def still_serving(name: str, alias: str, version: int) -> list[tuple[str, int, str]]:
    """``(service, deployment version, name:version it serves)`` for each active deployment
    that pinned ``name@alias`` when it was deployed and serves another version than
    ``version``."""
    from shipyard.serve.deployments import DeploymentStore
    from shipyard.store.context import default_stores

    pinned = DeploymentStore(default_stores().meta).pinned_through(name, alias)
    return [found for found in pinned if found[2] != f"{name}:{version}"]


def _following(name: str, alias: str) -> set[str]:
    """The active deployments that follow ``name@alias`` (not paused): their hosts roll
    them when it moves."""
    from shipyard.serve.follow import FollowStore
    from shipyard.store.context import default_stores

    follows = FollowStore(default_stores().meta).following(f"{name}@{alias}")
    return {f.service for f in follows if not f.paused}


COMMANDS: list[click.Command] = [models_group]

__all__ = ["COMMANDS"]
