"""`fairline config apply | diff | export | rollback`: the configuration store, from the YAML file admins keep in git.

`apply FILE` validates FILE with the loader `fairline run` uses, shows what it changes per
number against the newest stored version, and stores it as a new version made from that one:
a version stored by someone else in between is not overwritten (the store refuses the stale
base). `diff FILE` shows the same and stores nothing; `export [VERSION]` prints a version's
text exactly as stored; `rollback VERSION` stores an earlier version's text again, as a new
version. Applies the database migrations first, like every database command.

Exit status: 0 done (also "no change"); 1 `diff` only: FILE differs from the newest version;
2 bad usage or input (an invalid file, no author, a stale base, an unknown version); 3 the
database is unreachable or failed. The composition root (ari_app/cli.py) calls register()
with the `config` subcommands. docs/configuration.md describes the workflow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rating.commands.database_command import EXIT_BAD_INPUT, EXIT_OK, add_database_url, error, with_database

if TYPE_CHECKING:  # imported by the commands, not by `fairline --help`
    import asyncpg

    from rating.storage.config_store import NumberChange, Role, StoredVersion

EXIT_DIFFERENT = 1  # `config diff`: FILE would store a new version, as diff(1) says files differ

ROLE_CHOICES = ("admin", "staff", "customer")  # rating.storage.config_store.ROLES, without loading asyncpg


def register(config_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `apply`, `diff`, `export` and `rollback` to the `fairline config` subcommands."""
    apply = config_subparsers.add_parser(
        "apply", help="validate a configuration file, show what it changes, store it as the newest version",
        description="Validate FILE as `fairline run` would (problems name file, line and key; nothing is stored "
                    "then), print what it changes per number against the newest stored version, and store it "
                    "as a new version made from that one. When someone stored a version meanwhile, nothing is "
                    "stored: export the newest, make the change again. The same content as the newest version "
                    "is no change and stores nothing.")
    apply.add_argument("file", type=Path, metavar="FILE", help="the configuration (YAML)")
    _who(apply)
    apply.add_argument("--base", metavar="VERSION",
                       help="the version FILE was made from (e.g. v12, as `config export` printed it); refused "
                            "unless it is the newest. Default: the newest when the diff is computed")
    add_database_url(apply)
    apply.set_defaults(fn=cmd_config_apply)

    diff = config_subparsers.add_parser(
        "diff", help="what applying a configuration file would change, storing nothing",
        description="Validate FILE and print what it changes per number against the newest stored version. "
                    "Exit 0 when it is the newest version's content, 1 when applying it would store a new "
                    "version, 2 when FILE is invalid, 3 when the database is unreachable.")
    diff.add_argument("file", type=Path, metavar="FILE", help="the configuration (YAML)")
    add_database_url(diff)
    diff.set_defaults(fn=cmd_config_diff)

    export = config_subparsers.add_parser(
        "export", help="print a stored version's configuration exactly as stored",
        description="Print the newest version's YAML (or VERSION's), byte for byte as it was applied: "
                    "`config export > f.yaml && config apply f.yaml ...` is no change.")
    export.add_argument("version", nargs="?", metavar="VERSION", help="e.g. v12; default the newest")
    add_database_url(export)
    export.set_defaults(fn=cmd_config_export)

    rollback = config_subparsers.add_parser(
        "rollback", help="store an earlier version's configuration again, as the newest version",
        description="Store VERSION's YAML as a new version made from the newest, and print what that changes. "
                    "The history keeps every version: a rollback is a change like any other.")
    rollback.add_argument("version", metavar="VERSION", help="the version to go back to, e.g. v12")
    _who(rollback)
    add_database_url(rollback)
    rollback.set_defaults(fn=cmd_config_rollback)


def _who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--author", required=True, metavar="NAME", help="who makes this change (recorded)")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded, shown by `config history`)")
    parser.add_argument("--role", choices=ROLE_CHOICES, default="admin",
                        help="in which role the author makes it; default admin")


# ---- pure: what a change is and how it reads


@dataclass(frozen=True, slots=True)
class Plan:
    """What storing `content` over the newest version would do."""

    newest: str | None  # the newest version's name; None when nothing is stored yet
    same: bool  # the newest version has this very content: nothing to store
    changes: tuple[NumberChange, ...]


def plan(newest: StoredVersion | None, content: str) -> Plan:
    """Compare `content` with the newest stored version: the same text, or which numbers it changes."""
    from ari_app.config_versions import number_changes
    from rating.storage.config_store import content_hash

    if newest is not None and newest.content_hash == content_hash(content):
        return Plan(newest.name, True, ())
    return Plan(newest.name if newest is not None else None, False,
                tuple(number_changes(newest.content if newest is not None else None, content)))


def write_plan(out: TextIO, p: Plan, what: str) -> None:
    """Each changed number with its diff, then one line that sums it up against the newest version."""
    against = p.newest or "nothing stored"
    if p.same:
        out.write(f"no change: {what} is {p.newest} already\n")
        return
    for c in p.changes:
        out.write(f"{c.change} {c.number}\n")
        out.writelines(f"    {line}\n" for line in c.diff.splitlines())
    if not p.changes:
        out.write(f"{what} against {against}: no number changed (only comments, layout or order)\n")
        return
    counts = {kind: sum(1 for c in p.changes if c.change == kind) for kind in ("added", "changed", "removed")}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    out.write(f"{what} against {against}: {summary}\n")


def blank(**given: str) -> list[str]:
    """The names of the options given as nothing but spaces."""
    return [name for name, value in given.items() if not value.strip()]


# ---- the commands


def cmd_config_diff(args: argparse.Namespace) -> int:
    content = _validated(args.file)
    if content is None:
        return EXIT_BAD_INPUT

    async def show(conn: asyncpg.Connection) -> int:
        from rating.storage.config_store import newest_version

        p = plan(await newest_version(conn), content)
        write_plan(sys.stdout, p, str(args.file))
        return EXIT_OK if p.same else EXIT_DIFFERENT

    return with_database(args, show)


def cmd_config_apply(args: argparse.Namespace) -> int:
    from rating.storage.config_store import version_id

    if not _who_given(args):
        return EXIT_BAD_INPUT
    base: int | None = None
    if args.base is not None:
        base = version_id(args.base)
        if base is None:
            error(f"--base: expected a version such as v12, got {args.base!r}")
            return EXIT_BAD_INPUT
    content = _validated(args.file)
    if content is None:
        return EXIT_BAD_INPUT

    async def store(conn: asyncpg.Connection) -> int:
        from rating.storage.config_store import newest_version, refusal

        newest = await newest_version(conn)
        # Made from the newest as it is now, unless told otherwise: a version stored between
        # this diff and the store makes the store refuse, so nobody's change is lost unseen.
        made_from = base if args.base is not None else (newest.id if newest is not None else None)
        p = plan(newest, content)
        if not p.same:  # a stale base is refused before its diff is shown; the store checks again under its lock
            early = refusal(author=args.author, based_on=made_from, content_hash=_hash(content), newest=newest)
            if early is not None:
                raise early
        write_plan(sys.stdout, p, str(args.file))
        if p.same:
            return EXIT_OK
        return await _store(conn, content, args, made_from, p.changes, note="")

    return with_database(args, store)


def cmd_config_export(args: argparse.Namespace) -> int:
    async def export(conn: asyncpg.Connection) -> int:
        from rating.storage.config_store import newest_version, version

        found = await (version(conn, args.version) if args.version is not None else newest_version(conn))
        if found is None:
            error("no configuration version stored yet: `fairline config apply FILE` stores the first"
                  if args.version is None else f"no version {args.version}: `fairline config history` lists them")
            return EXIT_BAD_INPUT
        # Bytes, not text: exactly as stored, whatever the terminal's encoding or newline handling.
        sys.stdout.flush()
        sys.stdout.buffer.write(found.content.encode("utf-8"))
        sys.stdout.buffer.flush()
        return EXIT_OK

    return with_database(args, export)


def cmd_config_rollback(args: argparse.Namespace) -> int:
    if not _who_given(args):
        return EXIT_BAD_INPUT

    async def rollback(conn: asyncpg.Connection) -> int:
        from ari_app.config import yaml_loader
        from ari_app.errors import ConfigError
        from rating.storage.config_store import newest_version, version

        target = await version(conn, args.version)
        if target is None:
            error(f"no version {args.version}: `fairline config history` lists them")
            return EXIT_BAD_INPUT
        newest = await newest_version(conn)
        p = plan(newest, target.content)
        if p.same:
            print(f"no change: {p.newest} has the content of {target.name} already")
            return EXIT_OK
        try:  # the loader may have become stricter since the version was stored
            yaml_loader.parse(target.content, target.name)
        except ConfigError as exc:
            error(f"{target.name} is not valid today; nothing stored:\n{exc}")
            return EXIT_BAD_INPUT
        write_plan(sys.stdout, p, f"{target.name}'s content")
        return await _store(conn, target.content, args, newest.id if newest is not None else None, p.changes,
                            note=f"rollback to {target.name}: ")

    return with_database(args, rollback)


async def _store(conn: asyncpg.Connection, content: str, args: argparse.Namespace, based_on: int | None,
                 changes: Sequence[NumberChange], *, note: str) -> int:
    from rating.storage.config_store import SameContent, store_version

    role: Role = args.role
    try:
        stored = await store_version(conn, content=content, author=args.author, role=role,
                                     reason=note + args.reason.strip(), based_on=based_on, changes=changes)
    except SameContent as same:  # someone stored this very content since the diff
        print(same)
        return EXIT_OK
    print(f"stored {stored.name} (made from {f'v{based_on}' if based_on is not None else 'nothing'}, "
          f"by {stored.author} as {stored.role})")
    return EXIT_OK


def _hash(content: str) -> str:
    from rating.storage.config_store import content_hash

    return content_hash(content)


def _who_given(args: argparse.Namespace) -> bool:
    missing = blank(author=args.author, reason=args.reason)
    for name in missing:
        error(f"--{name}: expected {'who makes this change' if name == 'author' else 'why'}, got nothing; "
              "nothing stored")
    return not missing


def _validated(path: Path) -> str | None:
    """FILE's text when the loader `fairline run` uses accepts it; None, its problems printed, when not."""
    from ari_app.config import yaml_loader
    from ari_app.errors import ConfigError

    try:
        return yaml_loader.load(path).text
    except ConfigError as exc:
        print(f"{exc}\n{path}: invalid; nothing stored", file=sys.stderr)
        return None
