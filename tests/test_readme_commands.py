"""Every ``shipyard …`` command the documentation shows is one the CLI accepts.

Where commands are found:

- **README.md** and the guides in **docs/*.md**: every line of a fenced code block that
  starts with ``shipyard `` (after an optional ``$ ``), a ``$(shipyard …)`` inside such a
  line (``KEY=$(shipyard keys create … | tail -1)``), and an alternative in its comment
  written ``or: shipyard …``;
- **the UI's templates** (``src/shipyard/ui/templates/*.html``): every
  ``<code>shipyard …</code>``;
- **the UI's Python** (``src/shipyard/ui/*.py``): every ```shipyard …``` in a string that
  is not a docstring (the hints its pages and errors show).

How a line is read (the conventions documentation follows):

- it is split like a shell (:mod:`shlex`); a ``#`` starts a comment; a line ending in
  ``\\`` goes on on the next (named by its first line);
- ``[...]`` marks an optional part: it is checked *with* the part (``[--stderr]`` is
  ``--stderr``);
- ``a | b | c`` after a command group lists alternative subcommands of that group
  (``shipyard cache ls | show home-rows`` is ``shipyard cache ls`` and ``shipyard cache show
  home-rows``), each checked; a ``|`` followed by a shell program (``tail``, ``jq``...:
  ``SHELL_PROGRAMS``) is a pipe, and what follows it is not checked;
- placeholders (``NAME``, ``FILE``, ``sy_3f2a…``, ``route:ROUTE``) are parsed as the values
  they stand for, so each must be a value its option or argument accepts; a Jinja
  ``{{ … }}`` in a template, or a ``{…}`` in an f-string, stands for a value of the kind
  its name ends in (``PLACEHOLDERS``: ``run_id`` -> ``1``, ``task.pathspec`` ->
  ``Flow/1/step/1``), else for ``X``;
- a file a command names (``gateway.yaml``, ``flow.py``: a word ending in a file name
  extension) is taken to exist: commands are parsed in an empty directory where those files
  are created empty.

Each command is resolved through :data:`shipyard.cli.main.main` with click's own parser —
group, subcommands, options and arguments, with their types — without running anything; a
failure names the file, the line, the command and click's message.

**Runnable blocks.** A README code block right after a ``<!-- runnable -->`` line is also
run, each command in turn, in a fresh ``SHIPYARD_HOME``; each must exit 0.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.store import context as _stores

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
UI = ROOT / "src" / "shipyard" / "ui"
RUNNABLE = "<!-- runnable -->"
#: after a `|`, these start a shell pipe, not an alternative subcommand
SHELL_PROGRAMS = frozenset(
    {"awk", "cat", "cut", "grep", "head", "jq", "less", "python", "sed", "sort", "tail", "tee",
     "wc", "xargs"}
)  # fmt: skip


@dataclass(frozen=True)
class Command:
    """A ``shipyard …`` command written at ``where`` (``file:line``)."""

    where: str
    text: str
    runnable: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


# --- finding commands ---------------------------------------------------------------------
def _from_shell_line(line: str) -> Iterator[str]:
    """The shipyard commands of one line of a console block."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:].lstrip()
    code, _, comment = _split_comment(text)
    if code.startswith("shipyard "):
        yield code
    yield from re.findall(r"\$\((shipyard [^)]*)\)", code)
    yield from (m.strip() for m in re.findall(r"\bor: (shipyard [^;#]*)", comment))


def _split_comment(text: str) -> tuple[str, str, str]:
    """``code # comment``, a ``#`` inside quotes kept in the code."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), "#", text[i + 1 :]
    return text, "", ""


def readme_commands(path: Path = README) -> list[Command]:
    """The commands of a Markdown file's code blocks (README.md, or a guide in docs/)."""
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found: list[Command] = []
    in_block = runnable = False
    previous = pending = ""
    first = 0  # the line a command continued with `\` starts on
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            if not in_block:
                runnable = previous.strip() == RUNNABLE
            in_block, pending = not in_block, ""
        elif in_block:
            first = first if pending else number
            whole = pending + line
            if whole.rstrip().endswith("\\"):  # continued on the next line
                pending = whole.rstrip()[:-1] + " "
                continue
            pending = ""
            for text in _from_shell_line(whole):
                found.append(Command(f"{shown}:{first}", text, runnable))
        if line.strip():
            previous = line
    return found


def template_commands(directory: Path = UI / "templates") -> list[Command]:
    found: list[Command] = []
    for path in sorted(directory.glob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for text in re.findall(r"<code>(shipyard [^<]*)</code>", line):
                text = re.sub(r"\{\{(.*?)\}\}", lambda m: _placeholder(m[1]), text)
                text = text.replace("&#39;", "'")
                found.append(Command(f"ui/templates/{path.name}:{number}", text))
    return found


def python_hints(directory: Path = UI) -> list[Command]:
    found: list[Command] = []
    for path in sorted(directory.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(
                    str(v.value) if isinstance(v, ast.Constant) else _placeholder(ast.unparse(v))
                    for v in node.values
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings:
                    continue
                text = node.value
            else:
                continue
            for hint in re.findall(r"`(shipyard [^`]+)`", text):
                found.append(Command(f"ui/{path.name}:{node.lineno}", hint))
    return found


#: what a value shown by a template or an f-string stands for, by how its name ends
PLACEHOLDERS = {
    ("id", "number", "version", "index", "attempt", "count", "port"): "1",
    ("pathspec",): "Flow/1/step/1",
}


def _placeholder(shown: str) -> str:
    """What a value shown by a template or an f-string stands for (see the docstring)."""
    name = re.sub(r"[^a-z_]", "", shown.split("|")[0].split("!")[0].lower())
    return next((v for ends, v in PLACEHOLDERS.items() if name.endswith(ends)), "X")


def docs_commands(directory: Path = DOCS) -> list[Command]:
    return [c for path in sorted(directory.glob("*.md")) for c in readme_commands(path)]


def all_commands() -> list[Command]:
    return [*readme_commands(), *docs_commands(), *template_commands(), *python_hints()]


# --- reading one command ------------------------------------------------------------------
def expand(text: str) -> list[list[str]]:
    """The argument lists ``text`` stands for (see the module docstring), without the
    leading ``shipyard``. Raises ValueError for a line shlex cannot split."""
    words = shlex.split(text.replace("[", " ").replace("]", " "), comments=True)
    if not words or words[0] != "shipyard":
        raise ValueError("does not start with `shipyard`")
    segments: list[list[str]] = [[]]
    for word in words[1:]:
        if word == "|":
            segments.append([])
        else:
            segments[-1].append(word)
    first, alternatives = segments[0], segments[1:]
    commands = [first]
    if alternatives:
        group_path = _group_path(first)
        for alternative in alternatives:
            if not alternative or alternative[0] in SHELL_PROGRAMS:
                break  # a shell pipe (`| tail -1`): the rest is not ours
            commands.append([*group_path, *alternative])
    return commands


def _group_path(args: list[str]) -> list[str]:
    """The leading words of ``args`` that name nested groups (``["cache"]`` for ``cache ls
    ...``)."""
    path: list[str] = []
    command: click.Command = main
    for word in args:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), word)
        if not isinstance(sub, click.Group):
            break
        path.append(word)
        command = sub
    return path


def resolve(args: list[str]) -> click.Command:
    """Parse ``args`` as ``shipyard`` would, down to the command they name, without invoking
    anything. Raises click's own errors (``UsageError``, ``BadParameter``...)."""
    command: click.Command = main
    ctx = main.make_context("shipyard", list(args))
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return command


_FILE = re.compile(r"[\w./-]+\.[A-Za-z][A-Za-z0-9]{0,5}")


def problem(command: Command) -> str | None:
    """Why ``command`` is not one ``shipyard`` accepts, or None. Call it in an empty
    directory (the files the command names are created there)."""
    try:
        expanded = expand(command.text)
    except ValueError as exc:
        return f"cannot be read: {exc}"
    for args in expanded:
        for word in args:
            if _FILE.fullmatch(word) and not word.startswith("/"):
                Path(word).parent.mkdir(parents=True, exist_ok=True)
                Path(word).touch()
        try:
            resolve(args)
        except click.ClickException as exc:
            shown = shlex.join(["shipyard", *args])
            return f"`{shown}`: {exc.format_message()}"
        except click.exceptions.Exit:
            continue  # --help, --version: accepted
    return None


# --- the tests ----------------------------------------------------------------------------
def test_the_finders_find_what_they_should() -> None:
    """Guards against a finder that silently finds nothing (the other tests would pass)."""
    readme = readme_commands()
    texts = {c.text for c in readme}
    assert len(readme) >= 30
    assert "shipyard keys list" in texts
    assert any(c.text.startswith("shipyard keys create") and "$(" not in c.text for c in readme)
    assert "shipyard serve --gateway-config gateway.yaml" in texts  # from `or: ...`
    assert any(c.runnable for c in readme)
    assert any("gateway-config" in c.text for c in template_commands())
    assert any(c.where.startswith("ui/run.py") for c in python_hints())
    docs = docs_commands()
    found = {(c.where.split(":")[0], c.text) for c in docs}
    assert ("docs/team.md", "shipyard db upgrade") in found


@pytest.fixture(name="empty_dir")
def empty_dir_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tmp_readme(directory: Path, text: str) -> Path:
    path = directory / "README.md"
    path.write_text(text)
    return path


def test_the_conventions(empty_dir: Path) -> None:
    assert expand("shipyard logs A/1/s [--stderr]  # logs") == [["logs", "A/1/s", "--stderr"]]
    assert expand("shipyard cache ls | show ns | gc") == [
        ["cache", "ls"],
        ["cache", "show", "ns"],
        ["cache", "gc"],
    ]
    assert expand("shipyard keys create --scope route:chat | tail -1") == [
        ["keys", "create", "--scope", "route:chat"]
    ]
    assert list(_from_shell_line("$ KEY=$(shipyard keys list | tail -1)")) == [
        "shipyard keys list | tail -1"
    ]
    assert _placeholder("{d.run_id}") == "1" and _placeholder("{{ d.service }}") == "X"
    assert _placeholder(" task.pathspec ") == "Flow/1/step/1"
    assert _placeholder(" chosen.attempt ") == "1"
    continued = tmp_readme(empty_dir, "```console\n$ shipyard keys list \\\n    --all\n```\n")
    assert [(c.where, c.text) for c in readme_commands(continued)] == [
        ("README.md:2", "shipyard keys list      --all")
    ]
    assert problem(Command("x:1", "shipyard serve --gateway gateway.yaml")) is not None
    assert problem(Command("x:1", "shipyard serve --gateway-config gateway.yaml")) is None
    assert "No such command" in (problem(Command("x:1", "shipyard nope")) or "")
    assert "No such command" in (problem(Command("x:1", "shipyard cache ls | nope")) or "x")


def test_every_documented_command_parses(empty_dir: Path) -> None:
    failures = [f"{c}\n    -> {why}" for c in all_commands() if (why := problem(c))]
    assert not failures, (
        f"{len(failures)} documented command(s) that `shipyard` refuses:\n" + "\n".join(failures)
    )


@pytest.fixture(name="fresh_home")
def fresh_home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_CACHE_URL", "SHIPYARD_URL"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    yield home
    _stores.reset()  # the commands' cached stores point into this home


def test_runnable_readme_commands_run_in_a_fresh_home(fresh_home: Path) -> None:
    runnable = [c for c in readme_commands() if c.runnable]
    assert runnable, f"no code block in README.md follows a {RUNNABLE} line"
    runner = CliRunner()
    failures = []
    for command in runnable:
        for args in expand(command.text):
            result = runner.invoke(main, args)
            if result.exit_code != 0:
                failures.append(
                    f"{command}\n    -> exit {result.exit_code}: "
                    f"{(result.output or repr(result.exception)).strip()[-500:]}"
                )
    assert not failures, "\n".join(failures)
