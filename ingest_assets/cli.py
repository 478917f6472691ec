"""The ``ingest-assets`` command line: onboard datasets (new, check, list) and seed the demo.

Errors are one message with its fix and a non-zero exit code; ``--debug`` adds the traceback.
Tables fit the terminal, and when the output is a file or a pipe they lose their colours and
keep each cell on one line; ``--json`` prints the same rows for machines.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ingest_assets.errors import IngestError, SpecError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes.
OK, FAILED, INVALID = 0, 1, 2

#: Width of tables written to a file or a pipe: wide enough that no cell wraps (a terminal's own
#: width is used on a terminal).
PIPE_WIDTH = 400


def _console(stream: TextIO, *, stderr: bool = False) -> Console:
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


_out = _console(sys.stdout)
_err = _console(sys.stderr, stderr=True)


def _defs_option(function: F) -> F:
    return click.option(
        "--defs",
        "defs",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The defs folder (default: the project's ingest_assets/defs).",
    )(function)


def _common(function: F) -> F:
    function = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")(function)
    return _defs_option(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Onboard datasets: write a template, check it and its source, list what is declared."""


@cli.command("new")
@click.argument("kind")
@click.argument("name")
@click.option("--force", is_flag=True, help="Overwrite an existing defs.yaml.")
@click.option(
    "--from-sample",
    "sample",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A sample file (CSV, NDJSON, Parquet) whose columns and types to declare.",
)
@_common
def new(
    kind: str, name: str, force: bool, sample: Path | None, defs: Path | None, debug: bool
) -> None:
    """Write a commented defs.yaml for a new dataset NAME read from a KIND source.

    KIND is a registered source kind: object_store, sql, rest, stream, or a project's own.
    """
    import dagster as dg

    from ingest_assets.components.scaffolder import IngestDatasetsScaffolder, ScaffoldParams
    from ingest_assets.declarations import DRAFT, defs_root
    from ingest_assets.sources.registry import SOURCE_KINDS
    from ingest_assets.spec import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        raise click.UsageError(
            f"'{name}' is not a dataset name: use lowercase letters, digits and underscores."
        )
    if kind not in SOURCE_KINDS.kinds():
        known = ", ".join(SOURCE_KINDS.kinds())
        raise click.UsageError(f"'{kind}' is not a source kind; choose one of: {known}.")
    root = defs or defs_root()
    path = root / name / DRAFT
    request = dg.ScaffoldRequest(
        type_name="ingest_assets.components.IngestDatasets",
        target_path=root / name,
        scaffold_format="yaml",
        project_root=None,
        params=ScaffoldParams(
            kind=kind,
            name=name,
            force=force,
            draft=True,
            sample=str(sample.resolve()) if sample else None,
        ),
    )
    try:
        IngestDatasetsScaffolder().scaffold(request)
    except FileExistsError as exc:
        _err.print(f"{exc.args[0]} exists already; pass --force to overwrite it.")
        sys.exit(FAILED)
    _out.print(f"Wrote {path} (a draft: the running code location ignores it).")
    _out.print(
        f'Next: replace every "<placeholder>" in it, then run `ingest-assets check {name}`; '
        "when the check passes it renames the draft defs.yaml and the dataset appears in Dagster."
    )


@cli.command("check")
@click.argument("datasets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_common
def check(datasets: tuple[str, ...], as_json: bool, defs: Path | None, debug: bool) -> None:
    """Validate the declarations and test that each dataset's source answers.

    With DATASETS, only those are probed. Exits 1 when a source fails, 2 when a declaration is
    invalid.
    """
    from ingest_assets.declarations import defs_root, load_declared
    from ingest_assets.onboarding import probe
    from ingest_assets.templates import placeholders

    root = (defs or defs_root()).resolve()
    unfilled = placeholders(root)
    if unfilled:
        for path, line, text in unfilled:
            _err.print(f"{path.relative_to(root.parent)}:{line}: fill in {text}", markup=False)
        _err.print("Replace every placeholder, then run the check again.")
        sys.exit(INVALID)
    declared = load_declared(root, drafts=True)
    known = {entry.spec.name: entry for entry in declared}
    unknown = [name for name in datasets if name not in known]
    if unknown:
        _err.print(
            f"No dataset named {', '.join(unknown)}; declared: {', '.join(sorted(known)) or '-'}."
        )
        sys.exit(INVALID)
    chosen = [known[name] for name in datasets] if datasets else declared
    probes = [probe(entry.spec) for entry in chosen]
    rows = [
        {
            "dataset": p.dataset,
            "source": p.source,
            "status": p.status,
            "detail": p.detail,
            "latency_ms": round(p.seconds * 1000),
        }
        for p in probes
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        table = _table(["dataset", "source", "status", "detail", "latency"])
        for row in rows:
            status = "[green]ok[/green]" if row["status"] == "ok" else "[red]failed[/red]"
            table.add_row(
                row["dataset"],
                escape(str(row["source"])),
                status,
                escape(str(row["detail"])),
                f"{row['latency_ms']} ms",
            )
        _out.print(table)
        failed = sum(1 for p in probes if not p.ok)
        _out.print(f"{len(probes) - failed} of {len(probes)} sources answer.")
    if any(not p.ok for p in probes):
        sys.exit(FAILED)
    _promote(root, declared, chosen)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_common
def list_datasets(as_json: bool, defs: Path | None, debug: bool) -> None:
    """The declared datasets: source, partitions, trigger, SLA and owners."""
    from ingest_assets.declarations import describe, load_declared

    rows = [describe(entry) for entry in load_declared(defs, drafts=True, import_models=False)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["dataset", "source", "partitions", "trigger", "sla", "owners"]
    table = _table(columns)
    for row in rows:
        table.add_row(*(escape(row[column]) for column in columns))
    _out.print(table)


@cli.command("serve")
@click.argument("datasets", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The journal of accepted records (default: ingest_api/journal.sqlite under "
    "INGEST_ASSETS_DATA_DIR). Keep it on a disk that outlives the server.",
)
@_common
def serve_command(
    datasets: tuple[str, ...],
    host: str,
    port: int,
    journal: Path | None,
    defs: Path | None,
    debug: bool,
) -> None:
    """Serve the ingest API: POST /ingest/<dataset> for datasets with ingest_api set.

    With DATASETS, only those take pushes. Accepted records are journaled before the answer
    and written as files under each dataset's key template; its landing sensor loads them.
    """
    from ingest_assets.declarations import load_declared
    from ingest_assets.push.app import serve

    specs = [entry.spec for entry in load_declared(defs)]
    unknown = sorted(set(datasets) - {spec.name for spec in specs})
    if unknown:
        _err.print(f"No dataset named {', '.join(unknown)}.")
        sys.exit(INVALID)
    chosen = [spec for spec in specs if not datasets or spec.name in datasets]
    serve(chosen, host=host, port=port, journal_path=journal)


@cli.command("seed-demo")
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Last day to seed (default: yesterday).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def seed_demo_command(until: Any, debug: bool) -> None:
    """Write the demo landing files (days already present are kept)."""
    from ingest_assets.demo import seed_demo
    from ingest_assets.paths import data_dir

    root = data_dir()
    last: date | None = until.date() if until else None
    days = seed_demo(root, until=last)
    click.echo(f"demo landing files: {days} new day(s) under {root / 'landing'}")


def _promote(root: Path, declared: list[Any], passed: list[Any]) -> None:
    """Rename each draft whose every dataset passed the check to defs.yaml.

    The code location loads it from then on.
    """
    drafts = {entry.file for entry in declared if entry.draft}
    waiting = {entry.file for entry in declared if entry.draft and entry not in passed}
    for path in sorted(root / file for file in drafts - waiting):
        path.rename(path.with_name("defs.yaml"))
        _err.print(
            f"{path.relative_to(root.parent)} passed: renamed defs.yaml, the code location "
            "loads it now (reload it in the UI, or it reloads on its own in `dg dev`).",
            markup=False,
        )


def _table(columns: list[str]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _read_env_files() -> None:
    """Read the variables of ``.env`` in the working directory and in the project's root.

    As Dagster's own commands do; a variable already set wins.
    """
    from dotenv import load_dotenv

    from ingest_assets.paths import PROJECT_ROOT

    for folder in dict.fromkeys([Path.cwd(), PROJECT_ROOT]):
        if (folder / ".env").is_file():
            load_dotenv(folder / ".env", override=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Errors of the project (invalid declarations, unreachable sources, missing variables) print
    their message and fix; anything else prints one line. ``--debug`` shows the traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _read_env_files()
    try:
        cli.main(args, prog_name="ingest-assets", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as exc:
        exc.show()
        return INVALID
    except click.exceptions.Abort:
        return FAILED
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else FAILED
    except IngestError as exc:
        if debug:
            raise
        _err.print(str(exc), markup=False)
        return INVALID if isinstance(exc, SpecError) else FAILED
    except Exception as exc:
        if debug:
            raise
        _err.print(
            f"Unexpected {type(exc).__name__}: {exc}. Run again with --debug for the traceback.",
            markup=False,
        )
        return FAILED
    return OK


if __name__ == "__main__":
    sys.exit(main())
