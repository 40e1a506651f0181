"""`fairline console` (serve the web console) and `fairline users add|reset|disable|list`.

Only argparse is imported here (`fairline --help` answers at once); each command imports what it runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import TYPE_CHECKING

from rating.commands.database_command import EXIT_BAD_INPUT, EXIT_OK, add_database_url, error, with_database

if TYPE_CHECKING:
    import asyncpg

DEFAULT_LISTEN = "127.0.0.1:8091"  # loopback: reached through a TLS reverse proxy (docs/operations.md)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.settings import DEFAULT_PASSWORD_MAX_AGE_DAYS

    serve = sub.add_parser(
        "console", help="serve the management console (web pages for customers and staff)",
        description="Apply database migrations, then serve the console over HTTP on LISTEN (loopback by default). "
                    "Put it behind a TLS reverse proxy (docs/operations.md): its cookies are Secure, so a browser "
                    "sends them over HTTPS only.")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}")
    serve.add_argument("--plain-http", action="store_true",
                       help="cookies without Secure, for a browser talking plain HTTP to a loopback address "
                            "(tests, a quick look on this machine); refused with a --listen that is not loopback")
    serve.add_argument("--trusted-proxy", default="127.0.0.1", metavar="ADDRESSES",
                       help="the reverse proxy whose X-Forwarded-For gives the client's address (login throttling "
                            "counts per address); comma-separated; default 127.0.0.1")
    serve.add_argument("--password-max-age-days", type=int, default=DEFAULT_PASSWORD_MAX_AGE_DAYS,
                       help=f"remind a user to change a password this old; default {DEFAULT_PASSWORD_MAX_AGE_DAYS}, "
                            "0 never")
    serve.add_argument("--greetings-dir",
                       help="where uploaded voicemail greetings are written: the nodes' --greetings-dir (decision "
                            "0036); default $FAIRLINE_GREETINGS_DIR or /var/lib/fairline/greetings")
    add_database_url(serve)
    serve.set_defaults(fn=cmd_console)

    users = sub.add_parser("users", help="the console's accounts: add, reset, disable, list")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="SUBCOMMAND")
    add = users_sub.add_parser(
        "add", help="add an account and print its generated password once",
        description="A customer's account (--customer ID, an id of the newest configuration version) sees that "
                    "customer's numbers and calls; a staff account (--staff) sees every customer and must set up "
                    "two-factor sign-in (TOTP) at its first sign-in. The password is generated, printed once, and "
                    "stored only as an argon2id hash.")
    add.add_argument("email", help="the login")
    add.add_argument("--name", required=True, help="the person's name, as pages show it")
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", metavar="ID", help="the customer this account belongs to")
    who.add_argument("--staff", action="store_true", help="a member of staff")
    add_database_url(add)
    add.set_defaults(fn=cmd_users_add)
    reset = users_sub.add_parser(
        "reset", help="a new generated password, printed once; ends the account's sessions",
        description="Also lifts a lockout. --totp also removes two-factor sign-in (a lost phone): it is set up "
                    "again at the next sign-in (staff) or from the account page (customers).")
    reset.add_argument("email")
    reset.add_argument("--totp", action="store_true", help="remove the TOTP secret as well")
    add_database_url(reset)
    reset.set_defaults(fn=cmd_users_reset)
    disable = users_sub.add_parser("disable", help="refuse every sign-in of an account and end its sessions")
    disable.add_argument("email")
    add_database_url(disable)
    disable.set_defaults(fn=cmd_users_disable)
    listing = users_sub.add_parser("list", help="every account: e-mail, role, customer, TOTP, password age")
    add_database_url(listing)
    listing.set_defaults(fn=cmd_users_list)


def listen_address(text: str, *, plain_http: bool) -> tuple[str, int]:
    """HOST:PORT of --listen; plain HTTP only on loopback. Raises ValueError with what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if plain_http:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ValueError(f"--plain-http with --listen {text}: cookies without Secure are allowed on a "
                             "loopback address only")
    return host, int(port)


def cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    from console.app import create_app
    from console.settings import ConsoleSettings

    try:
        host, port = listen_address(args.listen, plain_http=args.plain_http)
    except ValueError as bad:
        error(str(bad))
        return EXIT_BAD_INPUT
    if args.password_max_age_days < 0:
        error("--password-max-age-days: 0 or more days")
        return EXIT_BAD_INPUT

    async def migrated(conn: asyncpg.Connection) -> int:
        return EXIT_OK  # with_database applied the migrations

    status = with_database(args, migrated)
    if status != EXIT_OK:
        return status
    from pathlib import Path

    from ari_app.settings import DEFAULT_GREETINGS_DIR

    greetings_dir = Path(args.greetings_dir or DEFAULT_GREETINGS_DIR).absolute()
    app = create_app(ConsoleSettings(args.database_url, secure_cookies=not args.plain_http,
                                     password_max_age_days=args.password_max_age_days, greetings_dir=greetings_dir))
    scheme = "http" if args.plain_http else "http (behind your TLS proxy)"
    print(f"fairline console on {scheme}://{host}:{port}/", file=sys.stderr, flush=True)
    asyncio.run(uvicorn.Server(uvicorn.Config(app, host=host, port=port, proxy_headers=True,
                                              forwarded_allow_ips=args.trusted_proxy, server_header=False,
                                              log_level="warning")).serve())
    return EXIT_OK


def _show_password(email: str, password: str) -> None:
    print(f"{email}: password {password}")
    print("Shown this once; it is stored only as a hash. Hand it over in person or through a second channel.")


def cmd_users_add(args: argparse.Namespace) -> int:
    from console.core import passwords
    from console import storage
    from console.settings import utc_now

    email = args.email.strip().lower()
    if "@" not in email.strip("@"):
        error(f"{args.email}: an e-mail address is the login")
        return EXIT_BAD_INPUT

    async def work(conn: asyncpg.Connection) -> int:
        if args.customer is not None and not await _customer_exists(conn, args.customer):
            error(f"--customer {args.customer}: no such customer in the newest configuration version "
                  "(fairline config export shows it)")
            return EXIT_BAD_INPUT
        password = passwords.generate()
        made = await storage.add_account(conn, email=email, name=args.name, role="staff" if args.staff else "customer",
                                         customer_id=args.customer, password_hash=passwords.hash_password(password),
                                         now=utc_now())
        await storage.audit(conn, at=utc_now(), event="user_added", email=email, user_id=made.user_id,
                            detail=f"{made.role}" + (f" of {made.customer_id}" if made.customer_id else ""))
        _show_password(email, password)
        return EXIT_OK

    return with_database(args, work)


async def _customer_exists(conn: asyncpg.Connection, customer_id: str) -> bool:
    from console.config_cache import ConfigCache

    current = await ConfigCache().current(conn)
    return current is not None and customer_id in current[1].customers


def cmd_users_reset(args: argparse.Namespace) -> int:
    from console import storage
    from console.core import passwords
    from console.settings import utc_now

    async def work(conn: asyncpg.Connection) -> int:
        found = await storage.account(conn, args.email.strip().lower())
        if found is None:
            error(f"{args.email}: no such account (fairline users list)")
            return EXIT_BAD_INPUT
        password = passwords.generate()
        await storage.set_password(conn, found.user_id, passwords.hash_password(password), utc_now(),
                                   clear_totp=args.totp)
        await storage.audit(conn, at=utc_now(), event="user_reset", email=found.email, user_id=found.user_id,
                            detail="password and TOTP" if args.totp else "password")
        _show_password(found.email, password)
        return EXIT_OK

    return with_database(args, work)


def cmd_users_disable(args: argparse.Namespace) -> int:
    from console import storage
    from console.settings import utc_now

    async def work(conn: asyncpg.Connection) -> int:
        found = await storage.account(conn, args.email.strip().lower())
        if found is None:
            error(f"{args.email}: no such account (fairline users list)")
            return EXIT_BAD_INPUT
        await storage.disable(conn, found.user_id, utc_now())
        await storage.audit(conn, at=utc_now(), event="user_disabled", email=found.email, user_id=found.user_id)
        print(f"{found.email}: disabled; its sessions ended")
        return EXIT_OK

    return with_database(args, work)


def cmd_users_list(args: argparse.Namespace) -> int:
    from console import storage
    from console.settings import utc_now

    async def work(conn: asyncpg.Connection) -> int:
        now = utc_now()
        for a in await storage.accounts(conn):
            state = "disabled" if a.disabled else ("totp" if a.totp_secret else "no-totp")
            print(f"{a.email}\t{a.role}\t{a.customer_id or '-'}\t{state}\t"
                  f"password {(now - a.password_changed_at).days} days old\t{a.name}")
        return EXIT_OK

    return with_database(args, work)
