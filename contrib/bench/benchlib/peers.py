"""The supervisors under test: how each is configured, started, queried and stopped.

Each gets the same services (a name, an argv, a number of instances) and is set to restart
at once with no delay where it has such a setting. Only configuration differs here; every
figure is taken by the measuring code in procfs.py, the same for all.

  ringmaster   ringmasterd as a user unit made from units/ringmaster.service (Type=notify,
               WatchdogSec=10s, Delegate=yes), --log-target journal; one service, N instances
  supervisord  one [program] with numprocs=N, startsecs=0, autorestart=true
  circus       one [watcher] with numprocesses=N; multicast_endpoint empty, no stats process
  runit        runsvdir on a scan directory of N service directories (`exec` in ./run)
  s6           s6-svscan on a scan directory of N service directories (`exec` in ./run)
  systemd      the session's `systemd --user`: a template unit, N instances wanted by a target,
               Restart=always RestartSec=0 StartLimitIntervalSec=0
"""

import os
import shlex
import subprocess
import time

from . import procfs


class Svc:
    def __init__(self, name, argv, instances=1, logs=False, extra_toml=""):
        self.name, self.argv, self.instances, self.logs = name, argv, instances, logs
        # Ringmaster only: TOML appended after the service's table (its probe tables)
        self.extra_toml = extra_toml


def run(argv, timeout=60, check=True, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=check, **kw)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Env:
    """Where things are: binaries, the venv, the session's cgroup and unit directory."""

    def __init__(self, root, bindir, venv, out, ringmaster_mode):
        self.root, self.bindir, self.venv, self.out = root, bindir, venv, out
        self.ringmaster_mode = ringmaster_mode
        self.cg2_mount = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        self.own_cgroup = procfs.cgroup2_path()
        self.unit_dir = os.path.join(os.environ["XDG_RUNTIME_DIR"], "systemd", "user")
        os.makedirs(self.unit_dir, exist_ok=True)
        self._seq = 0

    def cgroup_dir(self, name):
        self._seq += 1
        return f"{self.cg2_mount}{self.own_cgroup}/bench-{name}-{self._seq}"

    def manager_pid(self):
        """The session's `systemd --user` (in <our slice>/user@UID.service/init.scope)."""
        want = f"{self.own_cgroup}/user@{os.getuid()}.service/init.scope"
        for pid in procfs.all_pids():
            if procfs.cgroup2_path(pid) == want and (procfs.cmdline(pid) or b"").startswith(b"/lib/systemd/systemd\x00--user"):
                return pid
        raise RuntimeError("no systemd --user in this session")

    def infrastructure_pids(self):
        """journald and the user bus's dbus-daemon of this session (shared by everyone)."""
        out = {}
        for pid in procfs.all_pids():
            cg = procfs.cgroup2_path(pid) or ""
            if not cg.startswith(self.own_cgroup):
                continue
            cl = procfs.cmdline(pid) or b""
            if cl.startswith(b"/lib/systemd/systemd-journald"):
                out.setdefault("journald", []).append(pid)
            elif b"dbus-daemon" in cl.split(b"\x00")[0]:
                out.setdefault("dbus-daemon", []).append(pid)
        return out


class Peer:
    key = label = ""
    own_is_tree = True

    def __init__(self, env):
        self.env = env
        self.wd = self.tag = None
        self.svcs = []
        self.proc = None
        self.cgroup = None

    # --- configuration -------------------------------------------------------------
    def configure(self, wd, tag, svcs):
        self.wd, self.tag, self.svcs = wd, tag, svcs
        os.makedirs(wd, exist_ok=True)
        self.write_config()

    def write_config(self):
        raise NotImplementedError

    # --- life ----------------------------------------------------------------------
    def launch(self):
        raise NotImplementedError

    def spawn_in_cgroup(self, argv):
        """Start argv in a fresh cgroup of its own (so stop() can kill every process it
        left with one write to cgroup.kill). The benchmark moves itself there for the fork
        and back, so the supervisor is exec'd directly, with no wrapper in between."""
        self.cgroup = self.env.cgroup_dir(self.key)
        os.mkdir(self.cgroup)
        home = f"{self.env.cg2_mount}{self.env.own_cgroup}/cgroup.procs"
        log = open(os.path.join(self.wd, f"{self.key}.stderr"), "wb")
        with open(f"{self.cgroup}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.wd, start_new_session=True)
        finally:
            with open(home, "w") as f:
                f.write(str(os.getpid()))
            log.close()

    def root_pid(self):
        return self.proc.pid

    def own_pids(self, child_markers):
        return procfs.own_processes(self.root_pid(), child_markers)

    def stop(self):
        if self.cgroup and os.path.isdir(self.cgroup):
            try:
                with open(f"{self.cgroup}/cgroup.kill", "w") as f:
                    f.write("1")
            except OSError:
                for pid in open(f"{self.cgroup}/cgroup.procs").read().split():
                    try:
                        os.kill(int(pid), 9)
                    except OSError:
                        pass
        if self.proc:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.cgroup:
            for _ in range(200):
                try:
                    os.rmdir(self.cgroup)
                    break
                except OSError:
                    time.sleep(0.02)
        self.proc = self.cgroup = None

    # --- queries -------------------------------------------------------------------
    def status_commands(self):
        """[(label, argv)] of the status queries timed in the control workload."""
        return []

    def log_destination(self, svc):
        """("journal", SYSLOG_IDENTIFIER) or ("files", [paths or directories])."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------
    def instances(self):
        for s in self.svcs:
            for i in range(1, s.instances + 1):
                yield s, i


# ----------------------------------------------------------------------------------------
class Ringmaster(Peer):
    key, label = "ringmaster", "Ringmaster"
    status_labels = ("ringctl status", "busctl get-property")

    def __init__(self, env):
        super().__init__(env)
        self.unit = None
        self._main_pid = None
        self.unit_extra = []

    def write_config(self):
        lines = []
        for s in self.svcs:
            lines += [f"[services.{s.name}]",
                      "command = [" + ", ".join(toml_str(a) for a in s.argv) + "]",
                      f"instances = {s.instances}",
                      'restart-delay = "0"',
                      'start-limit = { count = 1000, interval = "1s" }',
                      ""]
            if s.extra_toml:
                lines += [s.extra_toml, ""]
        self.config = os.path.join(self.wd, "ringmaster.toml")
        write(self.config, "\n".join(lines))
        self.argv = [os.path.join(self.env.bindir, "ringmasterd"), "--config", self.config,
                     "--log-target", "journal"]
        if self.env.ringmaster_mode == "unit":
            self.unit = f"rmbench-{self.tag}.service"
            write(os.path.join(self.env.unit_dir, self.unit), self.unit_text())
            run(["systemctl", "--user", "daemon-reload"])

    def unit_text(self):
        return ringmaster_unit_text(self.env.root, self.argv, self.unit_extra)

    def launch(self):
        self._main_pid = None
        if self.unit:
            run(["systemctl", "--user", "start", "--no-block", self.unit])
        else:
            self.spawn_in_cgroup(self.argv)

    def root_pid(self):
        if not self.unit:
            return self.proc.pid
        if self._main_pid is None:
            self._main_pid = unit_main_pid(self.unit)
        return self._main_pid

    def stop(self):
        if not self.unit:
            return super().stop()
        run(["systemctl", "--user", "stop", self.unit], timeout=120, check=False)
        run(["systemctl", "--user", "reset-failed", self.unit], check=False)
        os.unlink(os.path.join(self.env.unit_dir, self.unit))
        run(["systemctl", "--user", "daemon-reload"])

    def busctl_argv(self):
        return ["busctl", "--user", "get-property", "io.ringmaster.Ringmaster1", "/io/ringmaster/Ringmaster1",
                "io.ringmaster.Ringmaster1.Manager", "Version"]

    def status_commands(self):
        return [("ringctl status", [os.path.join(self.env.bindir, "ringctl"), "status"]),
                ("busctl get-property", self.busctl_argv())]

    def scale_status_commands(self):
        """For the 1000-service workload: the whole list, through ringctl and raw D-Bus."""
        return [self.status_commands()[0],
                ("busctl call ListServices", ["busctl", "--user", "call", "io.ringmaster.Ringmaster1",
                                              "/io/ringmaster/Ringmaster1", "io.ringmaster.Ringmaster1.Manager",
                                              "ListServices"])]

    def log_destination(self, svc):
        return ("journal", svc.name)


def ringmaster_unit_text(root, argv, extra=()):
    """units/ringmaster.service as shipped, with ExecStart= running `argv` and without
    [Install]; `extra` lines are appended to [Service] (experiments, e.g. rss-probe's
    Environment=LD_PRELOAD=…)."""
    out = []
    for line in open(os.path.join(root, "units", "ringmaster.service")).read().splitlines():
        if line.strip() == "[Install]":
            break
        if line.startswith("ExecStart="):
            line = "ExecStart=" + " ".join(shlex.quote(a) for a in argv)
        out.append(line)
    return "\n".join(out + list(extra)) + "\n"


def unit_main_pid(unit, timeout_s=5):
    """The MainPID of a user unit being started (waits until systemd has one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = int(run(["systemctl", "--user", "show", "-p", "MainPID", "--value", unit]).stdout.strip() or 0)
        if pid:
            return pid
        time.sleep(0.01)
    raise RuntimeError(f"{unit}: no MainPID within {timeout_s} s")


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------------------------
class Supervisord(Peer):
    key, label = "supervisord", "supervisord"
    status_labels = ("supervisorctl status",)

    def write_config(self):
        wd = self.wd
        self.conf = os.path.join(wd, "supervisord.conf")
        text = f"""[unix_http_server]
file={wd}/supervisor.sock

[supervisord]
nodaemon=true
logfile={wd}/supervisord.log
pidfile={wd}/supervisord.pid
childlogdir={wd}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{wd}/supervisor.sock
"""
        for s in self.svcs:
            text += f"""
[program:{s.name}]
command={" ".join(shlex.quote(a) for a in s.argv)}
numprocs={s.instances}
process_name=%(program_name)s_%(process_num)d
autorestart=true
startsecs=0
startretries=1000
redirect_stderr=true
"""
            if s.logs:
                text += f"stdout_logfile={wd}/{s.name}.out\nstdout_logfile_maxbytes=0\n"
        write(self.conf, text)

    def launch(self):
        self.spawn_in_cgroup([os.path.join(self.env.venv, "bin", "supervisord"), "-c", self.conf])

    def status_commands(self):
        return [("supervisorctl status", [os.path.join(self.env.venv, "bin", "supervisorctl"), "-c", self.conf, "status"])]

    def log_destination(self, svc):
        return ("files", [f"{self.wd}/{svc.name}.out"])


# ----------------------------------------------------------------------------------------
class Circus(Peer):
    key, label = "circus", "circus"
    status_labels = ("circusctl status",)

    def write_config(self):
        wd = self.wd
        self.endpoint = f"ipc://{wd}/endpoint"
        self.conf = os.path.join(wd, "circus.ini")
        # multicast_endpoint empty: no UDP multicast group (cluster discovery) on any interface;
        # no stats_endpoint: no circusd-stats process.
        text = f"""[circus]
endpoint = {self.endpoint}
pubsub_endpoint = ipc://{wd}/pubsub
multicast_endpoint =
statsd = False
"""
        for s in self.svcs:
            text += f"""
[watcher:{s.name}]
cmd = {s.argv[0]}
args = {" ".join(shlex.quote(a) for a in s.argv[1:])}
numprocesses = {s.instances}
respawn = True
max_retry = -1
copy_env = True
"""
            if s.logs:
                text += f"stdout_stream.class = FileStream\nstdout_stream.filename = {wd}/{s.name}.out\n"
        write(self.conf, text)

    def launch(self):
        self.spawn_in_cgroup([os.path.join(self.env.venv, "bin", "circusd"), self.conf])

    def status_commands(self):
        return [("circusctl status", [os.path.join(self.env.venv, "bin", "circusctl"), "--endpoint", self.endpoint, "status"])]

    def log_destination(self, svc):
        return ("files", [f"{self.wd}/{svc.name}.out"])


# ----------------------------------------------------------------------------------------
class _ScanDir(Peer):
    """runit and s6: a scan directory of service directories, one per instance."""

    logger = None  # argv prefix of the log service, the log directory appended

    def write_config(self):
        self.scandir = os.path.join(self.wd, "scan")
        os.makedirs(self.scandir, exist_ok=True)
        self.dirs = []
        for s, i in self.instances():
            d = os.path.join(self.scandir, f"{s.name}-{i}")
            self.dirs.append(d)
            write(f"{d}/run", "#!/bin/sh\nexec 2>&1\nexec " + " ".join(shlex.quote(a) for a in s.argv) + "\n", 0o755)
            if s.logs:
                logdir = f"{self.wd}/{s.name}.log.d"
                os.makedirs(logdir, exist_ok=True)
                self.prepare_logdir(logdir)
                write(f"{d}/log/run", "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in self.logger + [logdir]) + "\n", 0o755)

    def prepare_logdir(self, logdir):
        pass

    def log_destination(self, svc):
        return ("files", [f"{self.wd}/{svc.name}.log.d"])


class Runit(_ScanDir):
    key, label = "runit", "runit"
    status_labels = ("sv status",)
    logger = ["svlogd"]

    def prepare_logdir(self, logdir):
        write(f"{logdir}/config", "s100000000\nn10\n")  # no rotation within the run

    def launch(self):
        self.spawn_in_cgroup(["runsvdir", self.scandir])

    def status_commands(self):
        return [("sv status", ["sv", "status"] + self.dirs)]


class S6(_ScanDir):
    key, label = "s6", "s6"
    status_labels = ("s6-svstat",)
    logger = ["s6-log", "n20", "s100000000"]

    def launch(self):
        self.spawn_in_cgroup(["s6-svscan", self.scandir])

    def status_commands(self):
        return [("s6-svstat", ["s6-svstat", self.dirs[0]])]


# ----------------------------------------------------------------------------------------
class Systemd(Peer):
    key, label = "systemd", "systemd --user"
    status_labels = ("systemctl --user show", "busctl get-property")

    def write_config(self):
        self.prefix = f"sb{self.tag}"
        self.units = []
        wants = []
        for s in self.svcs:
            unit = f"{self.prefix}-{s.name}@.service"
            self.units.append(unit)
            text = f"""[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart={" ".join(shlex.quote(a) for a in s.argv)}
Restart=always
RestartSec=0
SyslogIdentifier={s.name}
"""
            write(os.path.join(self.env.unit_dir, unit), text)
            wants += [f"{self.prefix}-{s.name}@{i}.service" for i in range(1, s.instances + 1)]
        self.target = f"{self.prefix}.target"
        self.units.append(self.target)
        write(os.path.join(self.env.unit_dir, self.target), "[Unit]\nWants=" + " ".join(wants) + "\n")
        self.first = wants[0]
        run(["systemctl", "--user", "daemon-reload"])

    def launch(self):
        run(["systemctl", "--user", "start", "--no-block", self.target])

    def root_pid(self):
        return self.env.manager_pid()

    def own_pids(self, child_markers):
        return [self.env.manager_pid()]

    def stop(self):
        run(["systemctl", "--user", "stop", f"{self.prefix}-*", self.target], timeout=120, check=False)
        run(["systemctl", "--user", "reset-failed", f"{self.prefix}-*"], check=False)
        for u in self.units:
            os.unlink(os.path.join(self.env.unit_dir, u))
        run(["systemctl", "--user", "daemon-reload"])

    def status_commands(self):
        return [("systemctl --user show", ["systemctl", "--user", "show", self.first]),
                ("busctl get-property", ["busctl", "--user", "get-property", "org.freedesktop.systemd1",
                                         "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "Version"])]

    def log_destination(self, svc):
        return ("journal", svc.name)


ALL = [Ringmaster, Supervisord, Circus, Runit, S6, Systemd]
