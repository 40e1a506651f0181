"""Run fairline's stack without Docker: PostgreSQL, Asterisk 22 (chroot) and `fairline run`.

Used by `make demo`, `make up` and the end-to-end tests. Standard library only, so
it runs before anything else is installed. Commands:

    stack.py prerequisites   install missing system packages, build the Asterisk rootfs
    stack.py demo            start everything, place sample calls, print the CDRs, stop
    stack.py up              start everything in the foreground until Ctrl-C

Everything an instance writes lives in two places: its state directory on the
host (secrets, PostgreSQL data, logs) and its Asterisk directory inside the root
filesystem. Ports are on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# fairline's own rules for what the stack checks and prints (standard library only, so this runs
# before the venv exists too): which Asterisk is new enough, and a URL with its password hidden.
sys.path.insert(0, str(ROOT))
from ari_app.ari.version import MIN_ASTERISK_MAJOR, UnsupportedAsterisk, asterisk_major  # noqa: E402
from plumbing.redaction import redact  # noqa: E402

DIALPLAN = ROOT / "dialplan"
# Root's cache is under /var/cache: PostgreSQL's data must be reachable by the
# postgres user, which cannot enter /root.
CACHE = Path(
    os.environ.get("FAIRLINE_CACHE")
    or ("/var/cache/fairline" if os.geteuid() == 0 else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fairline")
)
SCENARIOS = ROOT / "tests" / "e2e" / "scenarios"  # sipp scenarios: callers and the phones they reach
# The host user every instance's Asterisk runs as (decision 0024): not root, and not the root
# filesystem's own `asterisk`, whose uid on the host may belong to someone else (here: postgres).
ASTERISK_USER = "fairline-asterisk"

# command -> Debian package that provides it
SYSTEM_PACKAGES = {
    "debootstrap": "debootstrap",
    "sipp": "sip-tester",
    "psql": "postgresql-client",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "sox": "sox",  # the recording tests measure the audio fairline recorded
    "iptables": "iptables",  # the fault tests drop ARI's packets to show a silent disconnect is noticed
    # The console's browser test drives Debian's Chromium (browsers cannot be downloaded here; decision 0032).
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "kamailio": "kamailio",  # the SIP edge in front of the cluster's nodes (cluster/, decision 0034)
    "kamcmd": "kamailio",
}


class StackError(Exception):
    """Set-up cannot go on; the message says what is wrong and what to do."""


def say(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- prerequisites


def find_pg_binary(name: str) -> str | None:
    """PostgreSQL server binaries live outside PATH on Debian (/usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(candidates[-1]) if candidates else None


def missing_packages() -> list[str]:
    missing = []
    for command, package in SYSTEM_PACKAGES.items():
        if find_pg_binary(command) is None and package not in missing:
            missing.append(package)
    return missing


def install_prerequisites() -> None:
    missing = missing_packages()
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise StackError(
                f"missing system packages: {' '.join(missing)}; install them (Debian: apt-get install {' '.join(missing)}) and run again"
            )
        say(f"installing system packages {' '.join(missing)} (apt-get, about 30 s)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run_quiet(["apt-get", "update", "-qq"], env=env, what="apt-get update")
        run_quiet(["apt-get", "install", "-y", "-qq", *missing], env=env, what=f"apt-get install {' '.join(missing)}")
        still = missing_packages()
        if still:
            raise StackError(f"apt-get ran but these packages are still missing: {' '.join(still)}")
    rootfs_path()
    if os.geteuid() == 0:
        asterisk_user()


def asterisk_user() -> tuple[int, int]:
    """The uid and gid of ASTERISK_USER, created the first time (a system user: no login, no home)."""
    try:
        found = pwd.getpwnam(ASTERISK_USER)
    except KeyError:
        if os.geteuid() != 0:
            raise StackError(f"the user {ASTERISK_USER} that runs Asterisk does not exist; run as root once to create it")
        say(f"creating the system user {ASTERISK_USER}, which runs Asterisk (once)")
        made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                               "--shell", "/usr/sbin/nologin", "--comment", "fairline's Asterisk (asterisk-docker/stack.py)",
                               ASTERISK_USER], capture_output=True, text=True)
        try:  # another stack starting at the same moment may have made it first
            found = pwd.getpwnam(ASTERISK_USER)
        except KeyError:
            raise StackError(f"useradd {ASTERISK_USER} failed (exit {made.returncode}): {made.stderr.strip()}") from None
    return found.pw_uid, found.pw_gid


def run_quiet(cmd: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 900,
              stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def rootfs_path() -> Path:
    """Build the Asterisk root filesystem when missing or out of date; return its path."""
    proc = subprocess.run([str(HERE / "rootfs.sh")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise StackError("the Asterisk root filesystem could not be built (see the messages above)")
    return Path(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ports


@dataclasses.dataclass(frozen=True)
class Ports:
    sip: int
    http: int
    ami: int
    pg: int
    rtp_start: int
    rtp_end: int
    targets: int  # where the carrier-out trunk sends calls to targets (sipp plays the phones)
    status: int  # fairline's /healthz and /metrics
    console: int  # the management console (`fairline console`, plain HTTP on loopback)

    @classmethod
    def defaults(cls) -> "Ports":
        def env(name: str, default: int) -> int:
            raw = os.environ.get(name, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name}={raw!r}: expected a port number 1-65535")
            return int(raw)

        rtp = env("FAIRLINE_RTP_START", 10000)
        return cls(
            sip=env("FAIRLINE_SIP_PORT", 5060),
            http=env("FAIRLINE_HTTP_PORT", 8088),
            ami=env("FAIRLINE_AMI_PORT", 5038),
            pg=env("FAIRLINE_PG_PORT", 5433),
            rtp_start=rtp,
            rtp_end=rtp + 999,
            targets=env("FAIRLINE_TARGETS_PORT", 5070),
            status=env("FAIRLINE_STATUS_PORT", 8090),
            console=env("FAIRLINE_CONSOLE_PORT", 8091),
        )

    @classmethod
    def free(cls) -> "Ports":
        """Ports nobody uses now (for tests, which must not collide with `make up`)."""
        picked: set[int] = set()
        while len(picked) < 7:
            port = free_port()
            if port_is_free(port, socket.SOCK_DGRAM):
                picked.add(port)
        sip, http, ami, pg, targets, status, console = sorted(picked)
        # A window of 1,000 RTP ports per test process, between `make up`'s 10000-10999 and the
        # kernel's ephemeral ports: a socket bound to port 0 (PJSIP's DNS resolver opens two at
        # start, sipp its own) must never take an RTP port or sit in the RTP range.
        windows = max(1, (ephemeral_low() - RTP_WINDOWS_FROM) // 1000)
        rtp = RTP_WINDOWS_FROM + (os.getpid() % windows) * 1000
        return cls(sip=sip, http=http, ami=ami, pg=pg, rtp_start=rtp, rtp_end=rtp + 999, targets=targets,
                   status=status, console=console)


RTP_WINDOWS_FROM = 11000  # the test stacks' RTP windows start here, above `make up`'s default range


def ephemeral_low() -> int:
    """The lowest port the kernel gives a socket bound to port 0 (Linux: 32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, kind: socket.SocketKind, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def check_ports_free(checks: list[tuple[str, int, socket.SocketKind, str]]) -> None:
    taken = [
        f"port {port}/{'udp' if kind == socket.SOCK_DGRAM else 'tcp'} on 127.0.0.1 ({what}) is already taken; "
        f"stop the program using it or set {env}"
        for what, port, kind, env in checks
        if not port_is_free(port, kind)
    ]
    if taken:
        raise StackError("\n  ".join(["cannot start:", *taken]))


# ---------------------------------------------------------------- processes


def stop_process(proc: subprocess.Popen[bytes] | None, name: str, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within {timeout:.0f} s; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def kill_stale(pidfile: Path, name: str, command_has: str | None = None) -> None:
    """A previous run that died may have left its process behind; end it before starting anew.

    With `command_has`, only a process whose command line contains it: the pid file is then one
    an unprivileged program writes, and root must not signal whatever pid it names.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if command_has is not None:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return
        if command_has not in command:
            return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    say(f"stopping {name} left over from an earlier run (pid {pid})")
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def wait_for(what: str, check, timeout: float, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    hint = ""
    if log is not None and log.exists():
        hint = "\nlast lines of " + str(log) + ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise StackError(f"{what} did not come up within {timeout:.0f} s{hint}")


# ---------------------------------------------------------------- the stack


@dataclasses.dataclass
class Stack:
    """One instance of PostgreSQL + Asterisk + fairline, started and stopped together."""

    name: str
    ports: Ports
    state_dir: Path
    rootfs: Path
    external_database_url: str | None = None
    app_config: Path = DIALPLAN / "fairline.yaml"
    fairline_log_level: str = "debug"  # one line per ARI event: what tests and `make up` want to see
    asterisk: subprocess.Popen[bytes] | None = None
    fairline: subprocess.Popen[bytes] | None = None
    targets: subprocess.Popen[bytes] | None = None
    console: subprocess.Popen[bytes] | None = None
    _pg_started: bool = False
    # A node of a cluster (cluster/cluster.py) runs in a network namespace of its own, on its own address,
    # with Kamailio as its carrier; these defaults are the single stack's.
    netns: str | None = None
    sip_address: str = "127.0.0.1"
    system_name: str = "fairline1"
    pg_listen: str = "127.0.0.1"
    carrier_in_match: str | None = None
    carrier_out_host: str | None = None

    @classmethod
    def create(cls, name: str, ports: Ports) -> "Stack":
        state = CACHE / "instances" / name
        state.mkdir(parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        return cls(
            name=name,
            ports=ports,
            state_dir=state,
            rootfs=rootfs_path(),
            external_database_url=os.environ.get("DATABASE_URL") or None,
        )

    def in_netns(self, cmd: list[str]) -> list[str]:
        """`cmd` run in this stack's network namespace (unchanged for a stack that has none)."""
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    # -- paths
    @property
    def asterisk_dir_inside(self) -> str:
        return f"/srv/fairline/{self.name}"

    @property
    def asterisk_dir(self) -> Path:
        return self.rootfs / self.asterisk_dir_inside.lstrip("/")

    @property
    def fallback_file(self) -> Path:
        """The generated fallback context extensions.conf includes, seen from outside the root filesystem."""
        return self.asterisk_dir / "etc" / "fallback" / "fairline-fallback.conf"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"

    @property
    def pg_dir(self) -> Path:
        """The private cluster's data and socket (owned by the postgres user when run as root)."""
        return CACHE / "pg" / self.name

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def database_url(self) -> str:
        if self.external_database_url:
            return self.external_database_url
        pw = self.secrets()["PG_PASSWORD"]
        return f"postgresql://fairline:{pw}@127.0.0.1:{self.ports.pg}/fairline"

    def log(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    # -- secrets
    def secrets(self) -> dict[str, str]:
        """Strong random secrets, generated once per instance into a file only the owner can read."""
        if not self.secrets_file.exists():
            values = {
                "ARI_USER": "fairline",
                "ARI_PASSWORD": secrets.token_urlsafe(32),
                "AMI_USER": "fairline",
                "AMI_SECRET": secrets.token_urlsafe(32),
                "PG_PASSWORD": secrets.token_urlsafe(32),
            }
            fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in values.items())
        return dict(
            line.split("=", 1) for line in self.secrets_file.read_text().splitlines() if "=" in line
        )

    # -- start / stop
    def start(self, *, with_fairline: bool = True) -> None:
        try:
            self.start_postgres()
            self.start_asterisk()
            self.start_targets(SCENARIOS / "uas_targets.xml")
            if with_fairline:
                self.start_fairline()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.console, "console")
        self.console = None
        stop_process(self.targets, "sipp targets")
        self.targets = None
        stop_process(self.fairline, "fairline")
        self.fairline = None
        self.stop_asterisk()
        self.stop_postgres()

    # PostgreSQL
    def start_postgres(self) -> None:
        if self.external_database_url:
            self.check_database_answers()
            return
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        kill_stale(self.pg_data / "postmaster.pid", "PostgreSQL")
        check_ports_free([("PostgreSQL", self.ports.pg, socket.SOCK_STREAM, "FAIRLINE_PG_PORT or DATABASE_URL")])
        sock_dir = self.pg_dir / "sock"
        if not (self.pg_data / "PG_VERSION").exists():
            say(f"creating a private PostgreSQL cluster in {self.pg_data} (once, a few seconds)")
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_data.mkdir(mode=0o700, parents=True)
            pwfile = self.pg_dir / "password"
            write_private(pwfile, self.secrets()["PG_PASSWORD"] + "\n")
            if as_postgres:
                for path in (self.pg_dir, self.pg_data, pwfile):
                    shutil.chown(path, "postgres")
            try:
                run_quiet(
                    [*as_postgres, find_pg_binary("initdb") or "initdb", "-D", str(self.pg_data), "-U", "fairline",
                     "--auth-host=scram-sha-256", "--auth-local=peer", f"--pwfile={pwfile}", "-E", "UTF8",
                     "--locale=C.UTF-8"],
                    what="initdb",
                )
            finally:
                pwfile.unlink()
        sock_dir.mkdir(exist_ok=True)
        if as_postgres:
            shutil.chown(sock_dir, "postgres")
        run_quiet(self.in_netns(
            [*as_postgres, find_pg_binary("pg_ctl") or "pg_ctl", "-D", str(self.pg_data), "-l", str(self.pg_dir / "postgres.log"),
             "-w", "-t", "30", "start",
             "-o", f"-p {self.ports.pg} -k {sock_dir} -c listen_addresses={self.pg_listen} -c fsync=on"]),
            what="starting PostgreSQL",
        )
        self._pg_started = True
        exists = self.psql("postgres", "SELECT 1 FROM pg_database WHERE datname = 'fairline'").strip()
        if exists != "1":
            self.psql("postgres", "CREATE DATABASE fairline")

    def stop_postgres(self) -> None:
        if not self._pg_started:
            return
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, find_pg_binary("pg_ctl") or "pg_ctl", "-D", str(self.pg_data), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        self._pg_started = False

    def psql(self, db: str, sql: str, *extra: str, params: dict[str, str] | None = None) -> str:
        """Run `sql` with psql; `params` are bound as psql variables, quoted where the SQL says :'name'."""
        # The password goes by environment, not on a command line anyone can read in ps.
        url, password = split_password(self.database_url)
        if db != "fairline":
            url = url.rsplit("/", 1)[0] + "/" + db
        env = dict(os.environ, PGPASSWORD=password) if password else None
        cmd = self.in_netns(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra])
        if params is None:
            return run_quiet([*cmd, "-c", sql], what=f"psql {sql[:40]!r}", timeout=30, env=env)
        # psql interpolates variables in what it reads, not in -c: the SQL goes on stdin.
        variables = [arg for name, value in params.items() for arg in ("-v", f"{name}={value}")]
        return run_quiet([*cmd, *variables, "-f", "-"], what=f"psql {sql[:40]!r}", timeout=30, env=env, stdin=sql)

    def check_database_answers(self) -> None:
        url, password = split_password(self.database_url)
        env = dict(os.environ, PGCONNECT_TIMEOUT="5", **({"PGPASSWORD": password} if password else {}))
        proc = subprocess.run(
            self.in_netns(["psql", url, "-X", "-q", "-A", "-t", "-c", "SELECT 1"]), capture_output=True, text=True, timeout=20, env=env,
        )
        if proc.returncode != 0:
            raise StackError(
                f"DATABASE_URL ({redact(self.database_url)}) does not answer: {proc.stderr.strip()}\n"
                "  unset DATABASE_URL to let the stack run a private PostgreSQL cluster, or fix the address"
            )

    # Asterisk
    def render_asterisk_config(self) -> None:
        etc = self.asterisk_dir / "etc"
        # spool/recording: ARI recordings go there (Asterisk does not create it); fairline moves them out.
        # log/cdr-custom: Asterisk's own CDRs (cdr_custom.conf), which `fairline reconcile` reads; not created either.
        for sub in ("etc", "etc/fallback", "spool", "spool/recording", "log", "log/cdr-custom", "run", "db"):
            (self.asterisk_dir / sub).mkdir(parents=True, exist_ok=True)
        uid, gid = asterisk_user()
        # Asterisk reads its configuration and cannot change it (root's, group-readable: decision 0024);
        # it owns what it writes. fairline runs as root here and reads and moves its files as root.
        for path in (self.asterisk_dir, etc, etc / "fallback"):
            os.chown(path, 0, gid)
            os.chmod(path, 0o750)
        for sub in ("spool", "log", "run", "db"):
            # Whole trees: an instance last run by an Asterisk as root left root's files there.
            chown_tree(self.asterisk_dir / sub, uid, gid)
            os.chmod(self.asterisk_dir / sub, 0o750)
        values = {
            "INSTANCE_DIR": self.asterisk_dir_inside,
            "SIP_ADDRESS": self.sip_address,
            "SYSTEM_NAME": self.system_name,
            "SIP_PORT": str(self.ports.sip),
            "HTTP_PORT": str(self.ports.http),
            "AMI_PORT": str(self.ports.ami),
            "RTP_START": str(self.ports.rtp_start),
            "RTP_END": str(self.ports.rtp_end),
            "CARRIER_IN_MATCH": self.carrier_in_match or os.environ.get("FAIRLINE_CARRIER_IN_MATCH", "127.0.0.1"),
            "CARRIER_OUT_HOST": self.carrier_out_host or os.environ.get("FAIRLINE_CARRIER_OUT_HOST",
                                                                        f"127.0.0.1:{self.ports.targets}"),
        }
        for template in sorted(DIALPLAN.glob("*.conf")):
            (etc / template.name).write_text(render_template(template, values))
        # The fallback routes for when fairline is down, from the same configuration it routes by.
        fairline = Path(sys.executable).parent / "fairline"
        generated = subprocess.run([str(fairline), "dialplan", "generate", str(self.app_config)],
                                   capture_output=True, text=True)
        if generated.returncode != 0:
            raise StackError(f"fairline dialplan generate {self.app_config} failed:\n{generated.stderr.strip()}")
        # In a directory of its own, which `fairline dialplan publish` rewrites after each change.
        (etc / "fallback" / "fairline-fallback.conf").write_text(generated.stdout)
        s = self.secrets()
        write_private(etc / "ari-users.conf",
                      f"[{s['ARI_USER']}]\ntype = user\nread_only = no\npassword = {s['ARI_PASSWORD']}\n", group=gid)
        # fairline's AMI user may reload and read configuration (class config) and nothing else: no
        # events, no calls, no Originate, no CLI commands (decision 0022, docs/operations.md).
        write_private(etc / "manager-users.conf",
                      f"[{s['AMI_USER']}]\nsecret = {s['AMI_SECRET']}\ndeny = 0.0.0.0/0.0.0.0\n"
                      "permit = 127.0.0.1/255.255.255.255\nread = none\nwrite = config\n", group=gid)

    @property
    def asterisk_conf_inside(self) -> str:
        return f"{self.asterisk_dir_inside}/etc/asterisk.conf"

    def asterisk_cmd(self, *args: str) -> list[str]:
        """`asterisk ARGS` in the root filesystem, as root: for the remote console (-rx) and -V."""
        return ["chroot", str(self.rootfs), "asterisk", "-C", self.asterisk_conf_inside, *args]

    def asterisk_rx(self, command: str, timeout: float = 10) -> str:
        return run_quiet(self.asterisk_cmd("-rx", command), what=f"asterisk -rx {command!r}", timeout=timeout)

    def start_asterisk(self) -> None:
        kill_stale(self.asterisk_dir / "run" / "asterisk.pid", "Asterisk", command_has=self.asterisk_conf_inside)
        check_ports_free([
            ("SIP", self.ports.sip, socket.SOCK_DGRAM, "FAIRLINE_SIP_PORT"),
            ("ARI/HTTP", self.ports.http, socket.SOCK_STREAM, "FAIRLINE_HTTP_PORT"),
            ("AMI", self.ports.ami, socket.SOCK_STREAM, "FAIRLINE_AMI_PORT"),
        ])
        self.render_asterisk_config()
        version = run_quiet(["chroot", str(self.rootfs), "asterisk", "-V"], what="asterisk -V").strip()
        check_asterisk_version(version)
        say(f"starting {version} (SIP {self.sip_address}:{self.ports.sip}, ARI {self.ari_url}, AMI 127.0.0.1:{self.ports.ami})")
        log = open(self.log("asterisk"), "ab")
        uid, gid = asterisk_user()
        # chroot drops to the user before it runs Asterisk (numeric ids: the root filesystem's
        # /etc/passwd does not know the host's user, and need not); Asterisk never holds root.
        self.asterisk = subprocess.Popen(
            self.in_netns(["chroot", f"--userspec=+{uid}:+{gid}", f"--groups=+{gid}", str(self.rootfs),
                           "asterisk", "-C", self.asterisk_conf_inside, "-f", "-n"]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # Its files (recordings, CDRs, logs) readable by its group, never by others.
            umask=0o027,
        )

        def booted() -> bool:
            if self.asterisk is not None and self.asterisk.poll() is not None:
                raise StackError(f"Asterisk exited at start (status {self.asterisk.returncode}); see {self.log('asterisk')}")
            proc = subprocess.run(self.asterisk_cmd("-rx", "core waitfullybooted"), capture_output=True, timeout=30)
            return proc.returncode == 0 and b"fully booted" in proc.stdout

        wait_for("Asterisk", booted, timeout=60, log=self.log("asterisk"))

    def stop_asterisk(self) -> None:
        if self.asterisk is None or self.asterisk.poll() is not None:
            return
        subprocess.run(self.asterisk_cmd("-rx", "core stop now"), capture_output=True, timeout=15)
        try:
            self.asterisk.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process(self.asterisk, "Asterisk")
        self.asterisk = None

    # fairline
    def fairline_env(self) -> dict[str, str]:
        return dict(
            os.environ,
            DATABASE_URL=self.database_url,
            FAIRLINE_ARI_URL=self.ari_url,
            FAIRLINE_SECRETS=str(self.secrets_file),
            FAIRLINE_CONFIG=str(self.app_config),
            FAIRLINE_SPOOL_DIR=str(self.state_dir / "spool"),
            FAIRLINE_RECORDINGS_DIR=str(self.state_dir / "recordings"),
            # Uploaded greetings, written here from PostgreSQL (decision 0036); the console names files here too.
            FAIRLINE_GREETINGS_DIR=str(self.state_dir / "greetings"),
            # Where this instance's Asterisk writes recordings (its astspooldir/recording), seen from outside.
            FAIRLINE_ASTERISK_RECORDINGS_DIR=str(self.asterisk_dir / "spool" / "recording"),
            # Asterisk's own CDRs (dialplan/cdr_custom.conf), seen from outside: what `fairline reconcile` reads.
            FAIRLINE_ASTERISK_CDR=str(self.asterisk_dir / "log" / "cdr-custom" / "fairline-cdr.csv"),
            FAIRLINE_STATUS_PORT=str(self.ports.status),
            # `fairline dialplan publish`: AMI (user and secret are in FAIRLINE_SECRETS) and the file it rewrites.
            FAIRLINE_AMI_HOST="127.0.0.1",
            FAIRLINE_AMI_PORT=str(self.ports.ami),
            FAIRLINE_ASTERISK_FALLBACK=str(self.fallback_file),
        )

    def start_fairline(self, exe: Path | None = None) -> None:
        """Start `fairline run` (this venv's, or the executable `exe`) and wait until it is connected to ARI.

        The configuration store is the truth (decision 0021): the stack's configuration file is stored
        first, as an admin would with `fairline config apply`, so this fairline runs it (no change when it
        is the newest version already). A baseline's older fairline (`exe`) records its file itself.
        """
        if exe is None:
            self.apply_config()
        exe = exe or Path(sys.executable).parent / "fairline"
        log = open(self.log("fairline"), "ab")
        # As docs/operations.md has production run it: fairline's threads at the lowest real-time priority,
        # so that Asterisk and PostgreSQL on the same cores do not keep its event loop waiting (the checker
        # child sets itself back to the normal policy: config_parse.py; decision 0040).
        realtime = ["chrt", "--rr", "1"] if realtime_allowed() else []
        self.fairline = subprocess.Popen(
            self.in_netns([*realtime, str(exe), "run", "--log-format", "json", "--log-level", self.fairline_log_level]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.fairline_env(),
            start_new_session=True,
        )
        wait_for("fairline (connected to ARI)", self.fairline_connected, timeout=30, log=self.log("fairline"))

    def start_console(self) -> str:
        """`fairline console` on loopback, plain HTTP (a quick look on this machine); returns its URL."""
        check_ports_free([("the console", self.ports.console, socket.SOCK_STREAM, "FAIRLINE_CONSOLE_PORT")])
        exe = Path(sys.executable).parent / "fairline"
        url = f"http://127.0.0.1:{self.ports.console}/"
        log = open(self.log("console"), "ab")
        self.console = subprocess.Popen(
            [str(exe), "console", "--plain-http", "--listen", f"127.0.0.1:{self.ports.console}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.fairline_env(),
            start_new_session=True)

        def answers() -> bool:
            if self.console is not None and self.console.poll() is not None:
                raise StackError(f"the console exited at start (status {self.console.returncode}); "
                                 f"see {self.log('console')}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports.console), timeout=1):
                    return True
            except OSError:
                return False
        wait_for("the console", answers, timeout=30, log=self.log("console"))
        return url

    def add_user(self, email: str, name: str, *role: str) -> str:
        """`fairline users add`; returns what it printed (the generated password, shown once)."""
        exe = Path(sys.executable).parent / "fairline"
        done = subprocess.run([str(exe), "users", "add", email, "--name", name, *role], capture_output=True, text=True,
                              timeout=60, env=self.fairline_env())
        if done.returncode != 0:
            raise StackError(f"fairline users add {email} failed (status {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()}")
        return done.stdout.strip()

    def apply_config(self) -> None:
        """`fairline config apply` of the stack's configuration file, by author "stack"."""
        exe = Path(sys.executable).parent / "fairline"
        done = subprocess.run(self.in_netns([str(exe), "config", "apply", str(self.app_config), "--author", "stack",
                                             "--reason", f"stack start ({self.app_config.name})"]),
                              capture_output=True, text=True, timeout=120, env=self.fairline_env())
        if done.returncode == 3:  # PostgreSQL is down: fairline starts on its cached version, or the file
            say(f"configuration not stored (database unreachable): {(done.stderr or done.stdout).strip()}")
            return
        if done.returncode != 0:
            raise StackError(f"fairline config apply {self.app_config} failed (status {done.returncode}):\n"
                             f"{(done.stderr or done.stdout).strip()}")

    def fairline_connected(self) -> bool:
        if self.fairline is not None and self.fairline.poll() is not None:
            raise StackError(f"fairline exited at start (status {self.fairline.returncode}); see {self.log('fairline')}")
        out = subprocess.run(self.asterisk_cmd("-rx", "ari show apps"), capture_output=True, text=True, timeout=10)
        return re.search(r"^\s*fairline\s*$", out.stdout, re.M) is not None

    def start_targets(self, scenario: Path) -> subprocess.Popen[bytes]:
        """sipp answering as the customers' phones behind the carrier-out trunk, until stopped."""
        check_ports_free([("sipp targets", self.ports.targets, socket.SOCK_DGRAM, "FAIRLINE_TARGETS_PORT")])
        self.targets = subprocess.Popen(
            ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.ports.targets),
             "-mp", str(sipp_ports()[1]), "-nostdin", "-trace_err"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.state_dir,
            start_new_session=True,
        )
        return self.targets


def realtime_allowed() -> bool:
    """Whether this machine lets us start a process at real-time priority 1 (root, chrt, and a kernel or
    container that grants real-time time: a container without CAP_SYS_NICE or with no real-time runtime
    refuses it). Said once when it does not: fairline then runs at the normal priority."""
    global _realtime
    if _realtime is None:
        tried = (subprocess.run(["chrt", "--rr", "1", "true"], capture_output=True, text=True, timeout=10)
                 if os.geteuid() == 0 and shutil.which("chrt") else None)
        _realtime = tried is not None and tried.returncode == 0
        if not _realtime:
            why = "not root or no chrt" if tried is None else (tried.stderr.strip() or f"exit {tried.returncode}")
            say(f"fairline runs at the normal CPU priority: real-time priority 1 refused here ({why})")
    return _realtime


_realtime: bool | None = None


# sipp's own ports come from here: below the kernel's ephemeral range (a socket bound to port 0
# anywhere on the machine can never take one between our check and sipp's bind) and below
# `make up`'s 8088/8090 and the RTP windows. FAIRLINE_SIPP_PORTS=FROM-TO narrows the range, so that
# runs side by side (the test suite's workers) never check and bind the same port at once.
SIPP_PORTS_FROM, SIPP_PORTS_TO, SIPP_BLOCK = 6000, 8000, 8
_sipp_blocks = itertools.count(os.getpid())


def sipp_port_range() -> tuple[int, int]:
    """The ports sipp may use, FROM inclusive, TO exclusive: FAIRLINE_SIPP_PORTS (`FROM-TO`, TO
    inclusive as a person writes it) or the whole 6000-7999."""
    given = os.environ.get("FAIRLINE_SIPP_PORTS", "").strip()
    if not given:
        return SIPP_PORTS_FROM, SIPP_PORTS_TO
    low, sep, high = given.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = -1
    if not sep or not SIPP_PORTS_FROM <= first or last >= SIPP_PORTS_TO or last - first + 1 < SIPP_BLOCK:
        raise StackError(f"FAIRLINE_SIPP_PORTS={given!r}: expected FROM-TO within {SIPP_PORTS_FROM}-"
                         f"{SIPP_PORTS_TO - 1}, at least {SIPP_BLOCK} ports")
    return first, last + 1


def sipp_ports(address: str = "127.0.0.1", netns: str | None = None) -> tuple[int, int]:
    """A SIP port and a media port for one sipp on `address`, in the network namespace `netns` (the cluster's
    carrier, cluster/cluster.py) or this process's own.

    sipp binds audio RTP at the media port and video RTP two above it, without trying another
    port: a media port picked alone (a free ephemeral port) failed when its +2 was taken. Each
    call takes the next block of 8 ports (SIP at the first, media at the third) whose ports are
    all free now; the blocks go round in turn, from a start that differs per process. Free here
    is a bind that succeeds; in another namespace, a port none of its UDP sockets holds.
    """
    bound = udp_ports_bound(netns) if netns else None

    def free(port: int) -> bool:
        return port not in bound if bound is not None else port_is_free(port, socket.SOCK_DGRAM, address)

    low, high = sipp_port_range()
    blocks = (high - low) // SIPP_BLOCK
    for _ in range(blocks):
        first = low + (next(_sipp_blocks) % blocks) * SIPP_BLOCK
        if all(free(port) for port in range(first, first + SIPP_BLOCK)):
            return first, first + 2
    raise StackError(f"no free block of {SIPP_BLOCK} UDP ports for sipp on {address}"
                     f"{f' in {netns}' if netns else ''} in {low}-{high - 1}")


def udp_ports_bound(netns: str) -> set[int]:
    """The local ports of every UDP socket in the network namespace `netns` (its /proc/net/udp, udp6)."""
    out = run_quiet(["ip", "netns", "exec", netns, "cat", "/proc/net/udp", "/proc/net/udp6"],
                    what=f"the UDP sockets of {netns}", timeout=10)
    return local_ports(out)


def local_ports(proc_net_udp: str) -> set[int]:
    """The local ports in the text of /proc/net/udp (or udp6): `sl local_address ...`, the port in hex after ':'."""
    ports = set()
    for line in proc_net_udp.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[0].rstrip(":").isdigit():
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def render_template(path: Path, values: dict[str, str]) -> str:
    text = path.read_text()
    unknown = sorted(set(re.findall(r"@([A-Z_]+)@", text)) - values.keys())
    if unknown:
        raise StackError(f"{path}: unknown template marker(s) {', '.join('@' + u + '@' for u in unknown)}")
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)


def write_private(path: Path, text: str, *, group: int | None = None) -> None:
    """Write `text` readable by its owner only (mode 600), or also by `group` (640, that group's)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        if group is not None:
            os.fchown(f.fileno(), -1, group)
            os.fchmod(f.fileno(), 0o640)
        f.write(text)


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """Give `top` and all in it to uid:gid; a symbolic link itself, never what it points at (the
    tree is Asterisk's to write, and root must not be led to chown a file elsewhere)."""
    os.chown(top, uid, gid, follow_symlinks=False)
    for parent, dirs, files in os.walk(top):  # os.walk does not descend into linked directories
        for name in (*dirs, *files):
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def check_asterisk_version(version: str) -> None:
    """Refuse an Asterisk older than the one fairline was built and tested on (fairline's own rule)."""
    try:
        major = asterisk_major(version)
    except UnsupportedAsterisk:
        raise StackError(f"cannot read the Asterisk version from {version!r}") from None
    if major < MIN_ASTERISK_MAJOR:
        raise StackError(f"{version} is too old: fairline needs Asterisk {MIN_ASTERISK_MAJOR} or newer")


def split_password(url: str) -> tuple[str, str | None]:
    """A PostgreSQL URL without its password, and the password."""
    m = re.match(r"^(\w+://[^:/@]+):([^@]*)@(.*)$", url)
    if not m:
        return url, None
    return f"{m.group(1)}@{m.group(3)}", m.group(2)


# ---------------------------------------------------------------- demo / up

DEMO_CALLS = [
    ("+31201234567", "uac_talk.xml", "rings a mobile and a landline at once; the landline answers, 2 s of talk"),
    ("+31201234568", "uac_talk.xml", "sequential: the first phone is busy, the second's voicemail answers but "
                                      "does not press 1, the third answers and presses 1 (a confirmed forward)"),
    ("+31201234569", "uac_unanswered.xml", "nobody answers in 4 s: an announcement, released as no answer (480)"),
    ("+31201234571", "uac_voicemail.xml", "nobody answers in 4 s: the caller leaves a voicemail, mailed with its WAV"),
    ("+318001234567", "uac_answered.xml", "a toll-free number: answered, always charged at traffic rates"),
    ("+31209999999", "uac_rejected.xml", "an unknown number: 'not in service', released as unallocated (404)"),
    ("+31201234570", "uac_talk_8.xml", "the reception is unreachable: the helpdesk queue; an agent answers after "
                                        "1 s and presses 1, the caller talks and hangs up 8 s after joining"),
]


def demo_call(stack: Stack, did: str, scenario: Path, caller: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """One real SIP call into Asterisk with sipp, as the carrier would place it (the tests' harness: tests/e2e/sipp.py)."""
    sip, media = sipp_ports()
    return subprocess.run(
        ["sipp", "-sf", str(scenario), "-s", did, "-key", "caller", caller,
         "-i", "127.0.0.1", "-p", str(sip), "-mp", str(media),
         "-m", "1", "-r", "10", "-nostdin", "-timeout", f"{timeout:.0f}s", "-timeout_error",
         f"127.0.0.1:{stack.ports.sip}"],
        capture_output=True, text=True, timeout=timeout + 15, cwd=stack.state_dir,
    )


def print_cdrs(stack: Stack, since: str) -> None:
    out = stack.psql(
        "fairline",
        "SELECT call_id, did, caller, customer_id AS customer, number_type AS type, "
        "to_char(started_at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS start_utc, "
        "to_char(answered_at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS answer_utc, "
        "to_char(ended_at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS end_utc, disposition, hangup_cause AS cause, "
        "answered_target AS target, target_kind AS kind, billable_seconds AS secs, peak_seconds AS peak, offpeak_seconds AS offpeak, "
        "list_price_eur AS list_eur, fair_use_eligible AS fair_use, charged_eur, "
        "queue_name AS queue, queue_wait_seconds AS queue_wait, queue_disposition AS queue_end, "
        "answer_confirmed AS confirmed, unconfirmed_answers AS unconfirmed, voicemail, handled "
        "FROM cdrs WHERE started_at >= :'since' ORDER BY started_at",
        "-P", "format=aligned", "-P", "tuples_only=off", "-P", "border=2",
        params={"since": since},
    )
    print(out)


def cmd_demo(_: argparse.Namespace) -> int:
    stack = Stack.create(os.environ.get("FAIRLINE_INSTANCE", "demo"), Ports.defaults())
    # Voicemail e-mails go to an SMTP server on loopback that keeps them in a maildir (aiosmtpd).
    mail_dir, smtp_port = stack.state_dir / "demo-mail", free_port()
    os.environ.update(FAIRLINE_SMTP_HOST="127.0.0.1", FAIRLINE_SMTP_PORT=str(smtp_port),
                      FAIRLINE_SMTP_FROM="voicemail@fairline.example")
    smtp = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                             "-c", "aiosmtpd.handlers.Mailbox", str(mail_dir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        stack.start()
    except BaseException:  # the stack cleans up after itself; the SMTP server is the demo's own
        stop_process(smtp, "the demo's SMTP server")
        raise
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        for i, (did, scenario, what) in enumerate(DEMO_CALLS):
            caller = f"+3161234{5670 + i}"
            path = SCENARIOS / scenario
            if scenario == "uac_unanswered.xml":  # the caller expects 480 No Answer
                path = stack.state_dir / "uac_unanswered_480.xml"
                path.write_text((SCENARIOS / scenario).read_text().replace("[final]", "480"))
            if scenario == "uac_talk_8.xml":  # answered at once by the queue: stays 8 s
                path = stack.state_dir / scenario
                path.write_text((SCENARIOS / "uac_talk.xml").read_text()
                                .replace('<pause milliseconds="2000"/>', '<pause milliseconds="8000"/>'))
            if scenario == "uac_voicemail.xml":  # answered for the greeting; speaks after the beep, then hangs up
                path = stack.state_dir / scenario
                path.write_text((SCENARIOS / "uac_recorded.xml").read_text()
                                .replace("[before_audio]", '<pause milliseconds="6500"/>').replace("[talk_ms]", "12000"))
            proc = demo_call(stack, did, path, caller)
            outcome = "ok" if proc.returncode == 0 else f"FAILED (sipp exit {proc.returncode})"
            say(f"call {caller} -> {did}: {what}: {outcome}")
        # The CDR is written just after the call ends; give the writer a moment.
        wait_for("the demo CDRs",
                 lambda: int(stack.psql("fairline", "SELECT count(*) FROM cdrs WHERE started_at >= :'since'",
                                        params={"since": since})) >= len(DEMO_CALLS),
                 timeout=10, log=stack.log("fairline"))
        print("\nRated CDRs of these calls in PostgreSQL (table cdrs; docs/billing.md explains the columns):")
        print_cdrs(stack, since)
        wait_for("the voicemail e-mail",
                 lambda: int(stack.psql("fairline", "SELECT count(*) FROM voicemails WHERE email_status = 'sent' "
                                                    "AND started_at >= :'since'", params={"since": since})) >= 1,
                 timeout=30, log=stack.log("fairline"))
        print("\nVoicemail messages (`fairline voicemail list`):")
        listed = subprocess.run([str(Path(sys.executable).parent / "fairline"), "voicemail", "list", "--since",
                                 since[:10]], capture_output=True, text=True, env=stack.fairline_env(), timeout=60)
        print(listed.stdout or listed.stderr)
        say(f"the e-mail with the message attached is in the maildir {mail_dir / 'new'}")
        url = stack.start_console()
        print("\nThe management console (docs/console.md), with two accounts made for this demo; each password is "
              "shown once:")
        print(stack.add_user(f"demo-{int(time.time())}@acme.example", "Acme's demo user", "--customer", "acme"))
        print(stack.add_user(f"staff-{int(time.time())}@fairline.example", "Demo staff", "--staff"))
        say(f"the console answered at {url}; `make up` keeps it running (the demo stops it now)")
    finally:
        stack.stop()
        stop_process(smtp, "the demo's SMTP server")
    return 0


def until_signalled() -> Callable[[], bool]:
    """From now on SIGTERM and SIGINT (Ctrl-C) do not end the process: they set what the check returned tells."""
    signalled: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signalled.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return lambda: bool(signalled)


def cmd_up(_: argparse.Namespace) -> int:
    stack = Stack.create(os.environ.get("FAIRLINE_INSTANCE", "up"), Ports.defaults())
    stopping = until_signalled()
    stack.start()
    try:
        console = stack.start_console()
        say("up. Point a SIP client on this machine at the carrier side:")
        say(f"  call sip:+31201234567@127.0.0.1:{stack.ports.sip}  (a configured number; see {stack.app_config})")
        say(f"  ARI {stack.ari_url} (user/password in {stack.secrets_file})")
        say(f"  database {redact(stack.database_url)}")
        say(f"  the management console {console} (accounts: `.venv/bin/fairline users add`, docs/console.md)")
        say(f"  logs in {stack.state_dir}; Ctrl-C stops everything")
        while not stopping():
            if stack.fairline is not None and stack.fairline.poll() is not None:
                say(f"fairline exited (status {stack.fairline.returncode}); stopping")
                break
            time.sleep(0.2)
    finally:
        say("stopping")
        stack.stop()
    return 0


# The users of the Docker images (asterisk-docker/Dockerfile, compose.yaml), who own their secrets files.
DOCKER_ASTERISK_UID = 950
DOCKER_FAIRLINE_UID = 951
# Which secrets each container gets: Asterisk no database password.
DOCKER_SECRETS = {
    "asterisk": (DOCKER_ASTERISK_UID, ("ARI_USER", "ARI_PASSWORD", "AMI_USER", "AMI_SECRET")),
    "fairline": (DOCKER_FAIRLINE_UID, ("ARI_USER", "ARI_PASSWORD", "AMI_USER", "AMI_SECRET", "PG_PASSWORD")),
}


def cmd_secrets(_: argparse.Namespace) -> int:
    """Strong random secrets for the Docker compose stack (which has no stack.py to make them).

    Compose bind-mounts a secret file as it is on the host (no owner or mode of its own), and no
    container runs as root: so each container gets a file of its own, owned by its user (by uid:
    the host may have no such user) and readable by that user only. They are copies of the
    instance's secrets.env, written anew on each run.
    """
    if os.geteuid() != 0:
        raise StackError("the Docker secrets files must belong to the containers' users "
                         f"(uid {DOCKER_ASTERISK_UID}, {DOCKER_FAIRLINE_UID}); run this as root (sudo)")
    state = CACHE / "instances" / "docker"
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    stack = Stack(name="docker", ports=Ports.defaults(), state_dir=state, rootfs=Path("/nonexistent"))
    values = stack.secrets()
    pg_password = state / "pg_password"
    if not pg_password.exists():  # read by the postgres image's entrypoint, as root
        write_private(pg_password, values["PG_PASSWORD"])
    for container, (uid, keys) in DOCKER_SECRETS.items():
        path = state / f"{container}.env"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        write_private(tmp, "".join(f"{key}={values[key]}\n" for key in keys))
        os.chown(tmp, uid, uid)
        os.chmod(tmp, 0o400)
        tmp.replace(path)
        try:
            holder = pwd.getpwuid(uid).pw_name
        except KeyError:
            continue
        say(f"note: uid {uid} is the user {holder} on this host, who can read {path}; "
            "the containers' ids are fixed in asterisk-docker/Dockerfile")
    print(f"export FAIRLINE_ASTERISK_SECRETS_FILE={state / 'asterisk.env'}")
    print(f"export FAIRLINE_SECRETS_FILE={state / 'fairline.env'}")
    print(f"export FAIRLINE_PG_PASSWORD_FILE={pg_password}")
    return 0


def cmd_prerequisites(_: argparse.Namespace) -> int:
    install_prerequisites()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prerequisites", help="install missing system packages and build the Asterisk rootfs").set_defaults(fn=cmd_prerequisites)
    sub.add_parser("secrets", help="generate secrets for the Docker compose stack; print where they are").set_defaults(fn=cmd_secrets)
    sub.add_parser("demo", help="start the stack, place sample calls, print the CDRs, stop").set_defaults(fn=cmd_demo)
    sub.add_parser("up", help="start the stack in the foreground until Ctrl-C").set_defaults(fn=cmd_up)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except StackError as exc:
        say(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
