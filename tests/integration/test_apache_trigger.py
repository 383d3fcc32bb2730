"""Real Apache daemon mode with the trigger in a shared sticky directory, and another
local account (nobody, through setpriv) making, touching or linking the trigger's name.

Apache runs its daemons as www-data; the test runs as root, which is the code's owner
(it wrote the script) and so the deploy account here.
"""

from __future__ import annotations

import collections
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apache import Apache, wait_for
from support import Site, holds, pids_answering, require, restarts, warm

pytestmark = pytest.mark.integration

SECRET = "integration-secret-0123456789"
TOKEN = {"Authorization": f"Bearer {SECRET}"}
IGNORED = re.compile(r"\[pid (\d+)\] trigger (\S+) is owned by uid 65534 \(nobody\): ignored")
EXPOSED = "sticky, yet anyone can create names in it"


def as_user(user: str, group: str, *argv: str) -> None:
    """Run `argv` as another local account (through util-linux setpriv)."""
    setpriv = shutil.which("setpriv")
    require(None if setpriv else "setpriv (util-linux) is not installed")
    require(None if os.geteuid() == 0 else "acting as another uid needs root")
    assert setpriv is not None
    subprocess.run([setpriv, f"--reuid={user}", f"--regid={group}", "--clear-groups", *argv],
                   check=True, timeout=10)


def as_nobody(*argv: str) -> None:
    """Run `argv` as a neighbour on a shared host would."""
    as_user("nobody", "nogroup", *argv)


@pytest.fixture
def room() -> Iterator[Path]:
    """Like the system temp directory: mode 1777, anyone creates names, nobody removes
    others'."""
    require(None if os.geteuid() == 0 else "acting as another uid needs root")
    path = Path(tempfile.mkdtemp(prefix="rm-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def serve(site: Callable[..., Site], apache: Callable[..., Apache], trigger: Path) -> Apache:
    app = site(trigger=str(trigger), control="/__reload__", secret=SECRET)
    return apache(app, extra_config="WSGIPassAuthorization On")


def test_another_accounts_trigger_restarts_nothing(
    site: Callable[..., Site], apache: Callable[..., Apache], room: Path
) -> None:
    """nobody creates the trigger in the shared directory and touches it again and
    again: no daemon restarts, and each process says once whose it is and that it is
    ignored. The deploy account's trigger, made and touched there, restarts both."""
    trigger = room / "deploy.stamp"
    server = serve(site, apache, trigger)
    before = warm(server)
    server.wait_for_log(EXPOSED, count=2)  # both processes, as watching began
    as_nobody("touch", str(trigger))
    wait_for(lambda: len(IGNORED.findall(server.error_log())) == 2, 10,
             "both processes saying the trigger is ignored")
    for n in range(20):
        as_nobody("touch", "-d", f"@{1_700_000_000 + n}", str(trigger))
    as_nobody("touch", str(trigger))
    holds(lambda: pids_answering(server) == before, 3, "the same two daemons answering")
    assert restarts(server) == 0
    said = collections.Counter(pid for pid, _ in IGNORED.findall(server.error_log()))
    assert sorted(said.values()) == [1, 1] and set(map(int, said)) == before
    assert "changed: restart" not in server.error_log()

    trigger.unlink()  # the deploy account (root here) replaces it with its own
    trigger.touch()
    wait_for(lambda: not (pids_answering(server) & before), 20, "both daemons restarted")
    assert restarts(server) >= 1
    assert f"{trigger} (1 file) changed: restart" in server.error_log()


def test_the_server_accounts_trigger_restarts_as_before(
    site: Callable[..., Site], apache: Callable[..., Apache], room: Path
) -> None:
    """The trigger made and touched by the server's account (www-data) counts as before;
    the directory it is in is named at start, since anyone can create names there."""
    trigger = room / "deploy.stamp"
    as_user("www-data", "www-data", "touch", str(trigger))
    server = serve(site, apache, trigger)
    before = warm(server)
    log = server.wait_for_log(EXPOSED, count=2)
    assert "use a directory only the deploy account can write" in log
    as_user("www-data", "www-data", "touch", str(trigger))
    wait_for(lambda: not (pids_answering(server) & before), 20, "both daemons restarted")
    assert f"{trigger} (1 file) changed: restart" in server.error_log()


def test_a_link_at_the_trigger_is_not_followed_by_a_post(
    site: Callable[..., Site], apache: Callable[..., Apache], room: Path
) -> None:
    """nobody links the trigger's name to a 0600 file of the server's account, then to a
    name of its choosing in a directory the server writes: a control POST touches the
    first not at all and creates nothing at the second."""
    www = pwd.getpwnam("www-data")
    own = Path(tempfile.mkdtemp(prefix="rm-www-"))  # a directory of the server's account
    try:
        own.chmod(0o755)
        os.chown(own, www.pw_uid, www.pw_gid)
        private = own / "private.key"
        private.write_text("secret")
        private.chmod(0o600)
        os.chown(private, www.pw_uid, www.pw_gid)
        os.utime(private, ns=(10**18, 10**18))
        trigger = room / "deploy.stamp"
        as_nobody("ln", "-s", str(private), str(trigger))
        server = serve(site, apache, trigger)
        warm(server)
        posted = server.get("/__reload__", method="POST", headers=TOKEN)
        assert posted.status == 202
        assert os.stat(private).st_mtime_ns == 10**18
        chosen = own / "made-by-post"
        as_nobody("ln", "-sfn", str(chosen), str(trigger))
        posted = server.get("/__reload__", method="POST", headers=TOKEN)
        assert posted.status == 202
        assert not os.path.lexists(chosen)
        assert sorted(os.listdir(own)) == ["private.key"]
        assert os.stat(private).st_mtime_ns == 10**18
        assert "reloads this process only" in server.error_log()
    finally:
        shutil.rmtree(own, ignore_errors=True)
