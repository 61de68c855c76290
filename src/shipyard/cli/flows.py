"""``shipyard run`` / ``shipyard resume`` and the ``python flow.py run|resume|show`` CLI.

Both spellings build the same per-flow click command, whose options are the run options
plus one option per ``Parameter``; click checks every value's type before anything runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from shipyard._entry import discard_recorder, fork_recorder, take_recorder
from shipyard.flow.exceptions import FlowError, ParameterError, ResumeError, StoreRefused
from shipyard.flow.loader import LoadedFlow, load_flow
from shipyard.flow.parameters import IncludeFile, JSONType, Parameter, flow_parameters
from shipyard.store.records import RunRecord


def _fail(exc: FlowError) -> NoReturn:
    if isinstance(exc, ParameterError):
        raise click.UsageError(str(exc))
    raise click.ClickException(str(exc))


def _dest(p: Parameter) -> str:
    """The click destination of a flow parameter: an identifier (a parameter may be named
    ``gateway-config``), apart from the run options' (a parameter ``max_workers`` is not
    ``--max-workers``)."""
    return "param__" + p.name.replace("-", "_")


def _param_option(p: Parameter) -> click.Option:
    if p.type is bool:
        return click.Option(
            [f"--{p.name}/--no-{p.name}", _dest(p)],
            default=p.default if p.has_default else None,
            help=p.help,
            show_default=p.has_default,
        )
    click_type: Any = {JSONType: str}.get(p.type, p.type)
    if isinstance(p, IncludeFile):
        click_type = click.Path(dir_okay=False)
    return click.Option(
        [f"--{p.name}", _dest(p)],
        type=click_type,
        default=None,
        required=p.required and not p.has_default,
        help=(p.help or "") + (f"  [default: {p.default}]" if p.has_default else ""),
        metavar="FILE" if isinstance(p, IncludeFile) else None,
    )


_RUN_OPTIONS = [
    click.Option(
        ["--max-workers"],
        type=click.IntRange(min=1),
        default=None,
        help="Tasks run at once (default: the number of cores).",
    ),
    click.Option(["--tag"], multiple=True, help="Tag the run (repeatable)."),
    click.Option(
        ["--executor"],
        type=click.Choice(["local", "ray"]),
        envvar="SHIPYARD_EXECUTOR",
        default=None,
        help="Where tasks run: forked local processes, or one Ray task per attempt "
        "(pip install 'shipyard[ray]'). Default: SHIPYARD_EXECUTOR, else executor in "
        "config.yaml, else local.",
    ),
    click.Option(
        ["--ray-address"],
        envvar="SHIPYARD_RAY_ADDRESS",
        default=None,
        help="With --executor ray: an existing cluster's HOST:PORT (default: "
        "SHIPYARD_RAY_ADDRESS, else ray_address in config.yaml, else a local Ray started "
        "for this run and stopped after).",
    ),
    click.Option(
        ["--detach"],
        is_flag=True,
        help="With --executor ray and a cluster's address: run the runtime itself in the "
        "cluster (a detached Ray actor), print the run's id and return; follow it with "
        "shipyard runs / logs / show or the UI.",
    ),
    click.Option(
        ["--run-id-file"],
        type=click.Path(dir_okay=False),
        default=None,
        help="Write the run's pathspec (Flow/12) to this file as soon as it is known.",
    ),
    click.Option(["--quiet", "-q"], is_flag=True, help="No progress bars."),
    # the scheduler says why the run runs (current.trigger, runs.trigger); not for people
    click.Option(["--shipyard-trigger"], default=None, hidden=True),
    click.Option(
        ["--with", "decospecs"],
        multiple=True,
        metavar="DECORATOR[:attr=value,...]",
        help="Attach a step decorator to every step, e.g. --with retry, "
        "--with timeout:seconds=60 (repeatable; a step that has it keeps its own).",
    ),
    click.Option(
        ["--pypi-find-links"],
        multiple=True,
        metavar="DIR|URL",
        help="Where pip finds @pypi packages (with --no-index; repeatable). "
        "Default: $SHIPYARD_PYPI_FIND_LINKS, else pip's configured index.",
    ),
    click.Option(
        ["--branch"],
        default=None,
        help="@project flows: run on the branch test.NAME (prod.NAME with --production).",
    ),
    click.Option(
        ["--production"], is_flag=True, help="@project flows: run on the production branch."
    ),
]


def _execute(
    loaded: LoadedFlow,
    given: dict[str, Any],
    options: dict[str, Any],
    origin: Any = None,
    resume_step: str | None = None,
) -> NoReturn:
    from shipyard.client.namespaces import default_namespace
    from shipyard.config import current_user
    from shipyard.flow.environments import EnvironmentBuildError
    from shipyard.flow.launch import make_plan
    from shipyard.flow.project import activate, resolve
    from shipyard.flow.ray_executor import RayExecutorError
    from shipyard.flow.recorder import RecorderFailed
    from shipyard.flow.runtime import Runtime
    from shipyard.store.records import RunStatus

    if options.get("decospecs"):
        import shipyard.cards.decorator  # noqa: F401 - files @card under its name (--with card)
    try:
        executor, ray_address = _executor(options)
        on_branch = resolve(
            loaded.flow_cls,
            branch=options.get("branch"),
            production=bool(options.get("production")),
            user=current_user(),
        )
        plan = make_plan(
            loaded,
            given,
            tags=[*(options.get("tag") or ()), *(on_branch.tags if on_branch else ())],
            max_workers=options.get("max_workers"),
            quiet=bool(options.get("quiet")),
            origin=origin,
            resume_step=resume_step,
            decospecs=options.get("decospecs") or (),
            pypi_find_links=options.get("pypi_find_links") or (),
            executor=executor,
            ray_address=ray_address,
        )
        trigger = None
        if options.get("shipyard_trigger"):
            from shipyard.flow.trigger import parse

            trigger = parse(options["shipyard_trigger"])
            plan.trigger = trigger.to_json()
    except FlowError as exc:
        _fail(exc)
    if options.get("detach"):
        _detach(plan, given, options, origin)
    from shipyard.flow import trigger as _trigger

    _trigger.activate(trigger)  # current.trigger in the tasks forked from this process
    activate(on_branch)  # the tasks, forked from this process, see it in current
    default_namespace()  # and the client in a step starts in user:<you>, as in Metaflow
    if on_branch is not None:
        click.echo(f"Project: {on_branch.name}, Branch: {on_branch.branch}")
    runtime = Runtime(plan, recorder=take_recorder())
    if options.get("run_id_file"):
        pathspec_file, flow_name = Path(options["run_id_file"]), plan.graph.flow_name

        def write_pathspec(run_id: int) -> None:  # Runner reads it
            pathspec_file.write_text(f"{flow_name}/{run_id}")

        runtime.on_run_id = write_pathspec
    try:
        runtime.run()
    except (RecorderFailed, StoreRefused, EnvironmentBuildError, RayExecutorError) as exc:
        # metadata or blobs not written, or a @pypi environment not built: say why
        raise click.ClickException(str(exc)) from None
    sys.exit({RunStatus.SUCCEEDED: 0, RunStatus.KILLED: 130}.get(runtime.status, 1))


def _executor(options: dict[str, Any]) -> tuple[str, str | None]:
    """``--executor`` and ``--ray-address`` (flag or environment, as click read them), else
    ``executor`` / ``ray_address`` in config.yaml, else local and no address."""
    from shipyard.config import ConfigError, settings

    try:
        conf = settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    executor = options.get("executor") or conf.executor
    address = options.get("ray_address") or conf.ray_address
    if options.get("detach") and executor != "ray":
        raise ParameterError(
            "--detach runs the runtime in a Ray cluster: it needs --executor ray and "
            "--ray-address HOST:PORT (or SHIPYARD_EXECUTOR=ray and SHIPYARD_RAY_ADDRESS)"
        )
    return executor, address


def _detach(plan: Any, given: dict[str, Any], options: dict[str, Any], origin: Any) -> NoReturn:
    """``--detach``: hand the run to a detached actor in the cluster, say its id, return."""
    from shipyard.flow.ray_detach import detach

    discard_recorder()  # the runtime in the cluster records the run
    try:
        pathspec = detach(plan, given, options, origin)
    except FlowError as exc:
        _fail(exc)
    click.echo(f"{pathspec} runs in the Ray cluster at {plan.ray_address} (detached)")
    click.echo(f"  follow it: shipyard show {pathspec}   shipyard logs {pathspec}")
    if options.get("run_id_file"):
        Path(options["run_id_file"]).write_text(pathspec)
    sys.exit(0)


def run_command(loaded: LoadedFlow) -> click.Command:
    parameters = flow_parameters(loaded.flow_cls)

    def callback(**kwargs: Any) -> None:
        given = {p.name: kwargs.pop(_dest(p), None) for p in parameters}
        _execute(loaded, given, kwargs)

    return click.Command(
        "run",
        callback=callback,
        params=[*_RUN_OPTIONS, *(_param_option(p) for p in parameters)],
        help=f"Run {loaded.flow_cls.__name__} ({loaded.source_file.name}).",
    )


_RESUMABLE = ("failed", "killed", "dead")


def _find_origin(flow_name: str | None, run: str | None, step: str | None = None) -> RunRecord:
    """The run to resume: ``run`` (``12`` or ``Flow/12``), or the latest failed, killed or
    dead run of ``flow_name`` (of any flow when None). With ``step`` (re-run from that step
    on), the latest finished run of any status that has that step, as Metaflow's ``resume``
    takes the latest run: re-running a step of a run that succeeded needs no run id."""
    from shipyard.store.meta import MetaStore
    from shipyard.store.records import RunStatus

    if run:
        flow, _, number = run.rpartition("/")
        if flow_name and flow and flow != flow_name:
            raise ResumeError(f"run {run!r} is not a run of {flow_name}")
        flow_name = flow or flow_name
        if not number.isdigit() or not flow_name:
            raise click.BadParameter(
                f"{run!r}: expected Flow/12 (or 12 in python flow.py resume)", param_hint="RUN"
            )
    with MetaStore.open() as meta:
        if run:
            origin = meta.get_run(flow_name or "", int(number))
            if origin is None:
                raise ResumeError(
                    f"there is no run {flow_name}/{number}",
                    hint=f"list them with: shipyard runs --flow {flow_name}",
                )
            return origin
        for record in meta.list_runs(flow_name, limit=200):
            if step is not None and record.status is not RunStatus.RUNNING:
                if step in (record.graph.get("steps") or {}):
                    _say_latest(record, flow_name, step)
                    return record
            elif record.status.value in _RESUMABLE:
                return record
    if step is not None:
        raise ResumeError(
            f"{flow_name or 'no flow'} has no finished run with a step {step!r} to resume",
            hint="name one: shipyard resume Flow/<run id> --step STEP",
        )
    raise ResumeError(
        f"{flow_name or 'no flow'} has no failed, killed or dead run to resume",
        hint="name one: shipyard resume Flow/<run id>",
    )


def _say_latest(record: RunRecord, flow_name: str | None, step: str) -> None:
    of = f"of {flow_name}" if flow_name else "with that step"
    click.echo(
        f"resuming {record.pathspec} ({record.status.value}; the latest run {of}) from step {step}",
        err=True,
    )


def resume_command(loaded: LoadedFlow) -> click.Command:
    flow_name = loaded.flow_cls.__name__

    def callback(run: str | None, step: str | None, **options: Any) -> None:
        try:
            origin = _find_origin(flow_name, run, step)
        except FlowError as exc:
            _fail(exc)
        _execute(loaded, dict(origin.params), options, origin=origin, resume_step=step)

    return click.Command(
        "resume",
        callback=callback,
        params=[
            click.Argument(["run"], required=False),
            click.Option(
                ["--step"],
                default=None,
                help="Re-run from this step on, even where the origin succeeded.",
            ),
            *_RUN_OPTIONS,
        ],
        help=f"Resume a run of {flow_name}: reuse what succeeded, re-run what failed and "
        "what depends on it. RUN defaults to the latest failed run (with --step, to the "
        "latest run).",
    )


def show_command(loaded: LoadedFlow) -> click.Command:
    def callback() -> None:
        try:
            graph = loaded.graph()
        except FlowError as exc:
            _fail(exc)
        for node in graph:
            arrow = ", ".join(node.out) or "-"
            extra = f" (foreach {node.foreach})" if node.foreach else ""
            decos = " ".join(f"@{d.name}" for d in node.decorators)
            click.echo(f"{node.name:<20} {node.type.value:<8} -> {arrow}{extra}  {decos}".rstrip())
            if node.doc:
                click.echo(f"{'':<20} {node.doc}")

    return click.Command("show", callback=callback, help="Show the flow's steps.")


def _environment(environment: str) -> None:
    """``python flow.py --environment=pypi run``, as Metaflow spells it: @pypi always
    builds its environments here, so ``pypi`` (and ``local``) change nothing; ``conda`` is
    refused as @conda is."""
    if environment == "conda":
        from shipyard.flow.graph import conda_refusal

        raise click.UsageError(f"--environment=conda: {conda_refusal('conda')}")


def flow_group(loaded: LoadedFlow) -> click.Group:
    group = click.Group(
        loaded.flow_cls.__name__,
        help=(loaded.flow_cls.__doc__ or "").strip() or None,
        context_settings={"help_option_names": ["-h", "--help"]},
        callback=_environment,
        params=[
            click.Option(
                ["--environment"],
                type=click.Choice(["local", "pypi", "conda"]),
                default="local",
                show_default=True,
                help="Accepted as Metaflow spells it: @pypi steps always run in their own "
                "environment; conda is not supported.",
            )
        ],
    )
    for make in (run_command, resume_command, show_command):
        group.add_command(make(loaded))
    return group


def flow_main(flow_cls: type) -> NoReturn:
    """``python flow.py ...``: re-import the file under its own name, then run the CLI."""
    main_file = getattr(sys.modules.get(flow_cls.__module__), "__file__", None)
    if main_file is None:
        raise SystemExit(f"cannot find the file defining {flow_cls.__name__}")
    try:
        loaded = load_flow(main_file, flow_cls.__name__)
    except FlowError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    flow_group(loaded).main(prog_name=os.path.basename(main_file))
    sys.exit(0)


class _FlowFileCommand(click.Command):
    """``shipyard run FLOW_FILE [OPTIONS]``: the options depend on the file."""

    def __init__(self, name: str, make: Any, help: str) -> None:  # noqa: A002
        super().__init__(
            name,
            params=[
                click.Option(
                    ["--flow", "flow_name"],
                    default=None,
                    help="The flow class, when the file defines several.",
                ),
                click.Argument(["flow_file"], type=click.Path(dir_okay=False)),
                click.Argument(["args"], nargs=-1, type=click.UNPROCESSED),
            ],
            context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
            help=help,
            callback=self._invoke,
        )
        self._make = make

    def _invoke(self, flow_name: str | None, flow_file: str, args: tuple[str, ...]) -> None:
        if self.name == "run":
            fork_recorder()  # before the flow file loads (see shipyard._entry)
        try:
            loaded = load_flow(flow_file, flow_name)
        except FlowError as exc:
            discard_recorder()  # no run: the process may go on (CliRunner)
            raise click.UsageError(str(exc)) from None
        command = self._make(loaded)
        ctx = click.get_current_context()
        with command.make_context(f"{ctx.info_name} {flow_file}", list(args), parent=ctx) as sub:
            command.invoke(sub)


shipyard_run = _FlowFileCommand(
    "run",
    run_command,
    "Run a flow: shipyard run [--flow NAME] FLOW_FILE [--max-workers N] [--PARAM VALUE ...].\n\n"
    "Example: shipyard run examples/digits/flow.py --max-workers 2",
)


@click.command("resume")
@click.argument("run", required=False)
@click.option("--step", default=None, help="Re-run from this step on.")
@click.option("--max-workers", type=click.IntRange(min=1), default=None)
@click.option("--tag", multiple=True)
@click.option(
    "--run-id-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the run's pathspec (Flow/12) to this file as soon as it is known.",
)
@click.option("--quiet", "-q", is_flag=True)
@click.option(
    "--with",
    "decospecs",
    multiple=True,
    metavar="DECORATOR[:attr=value,...]",
    help="Attach a step decorator to every step (repeatable), as for run.",
)
@click.option(
    "--pypi-find-links",
    multiple=True,
    metavar="DIR|URL",
    help="Where pip finds @pypi packages (with --no-index), as for run.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    envvar="SHIPYARD_EXECUTOR",
    default=None,
    help="Where tasks run, as for run (default: SHIPYARD_EXECUTOR, config.yaml, local).",
)
@click.option("--ray-address", envvar="SHIPYARD_RAY_ADDRESS", default=None, help="As for run.")
@click.option("--detach", is_flag=True, help="Run the runtime in the Ray cluster, as for run.")
@click.option("--branch", default=None, help="@project flows: resume on the branch test.NAME.")
@click.option("--production", is_flag=True, help="@project flows: resume on the production branch.")
def shipyard_resume(run: str | None, step: str | None, **options: Any) -> None:
    """Resume RUN (Flow/12, or a flow name for its latest failed run; default: the latest
    failed run of any flow) with the flow file it ran from, changed or not. With --step and
    no run id, the latest run (failed or not) is resumed from that step.

    \b
    Examples:
      shipyard resume DigitsFlow/3 --step train
      shipyard resume DigitsFlow --step train
    """
    try:
        if run is None or "/" in run:
            record = _find_origin(None, run, step)
        else:
            record = _find_origin(run, None, step)
    except FlowError as exc:
        _fail(exc)
    source = record.graph.get("file")
    if not source or not Path(source).is_file():
        raise click.ClickException(
            f"{record.pathspec} ran from {source!r}, which no longer exists; "
            f"resume from the flow file: python FLOW_FILE resume {record.run_id}"
        )
    try:
        loaded = load_flow(source, record.flow_name)
    except FlowError as exc:
        raise click.ClickException(str(exc)) from None
    _execute(loaded, dict(record.params), options, origin=record, resume_step=step)


COMMANDS: list[click.Command] = [shipyard_run, shipyard_resume]
