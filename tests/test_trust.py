"""Whose trigger counts, and who else can write where we watch (trust.py)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SECRET, MakeProject, Until, call
from reload_middleware import logs
from reload_middleware.operations import doctor, state_dir
from reload_middleware.watching import paths, trust
from reload_middleware.watching.changes import Changes
from reload_middleware.watching.file_state import Stat
from reload_middleware.watching.registration import Registration

SERVER, DEPLOY, NOBODY = 33, 1000, 65534
TRUSTED = frozenset({0, SERVER, DEPLOY})

REG, LNK, DIR, FIFO = stat.S_IFREG, stat.S_IFLNK, stat.S_IFDIR, stat.S_IFIFO

TRIGGERS = [
    # (id, mode, owner, why it is refused: None when it counts)
    ("server-0644", REG | 0o644, SERVER, None),
    ("root-0644", REG | 0o644, 0, None),
    ("deploy-0664", REG | 0o664, DEPLOY, None),
    ("deploy-0600", REG | 0o600, DEPLOY, None),
    ("nobody-0644", REG | 0o644, NOBODY, "owned by uid 65534"),
    ("nobody-0600", REG | 0o600, NOBODY, "owned by uid 65534"),
    ("server-0666", REG | 0o666, SERVER, "writable by every account (mode 0666)"),
    ("root-0646", REG | 0o646, 0, "writable by every account (mode 0646)"),
    ("link-of-server", LNK | 0o777, SERVER, "a symbolic link"),
    ("link-of-nobody", LNK | 0o777, NOBODY, "a symbolic link"),
    ("fifo-of-server", FIFO | 0o644, SERVER, "not a regular file"),
    ("directory-of-server", DIR | 0o755, SERVER, "not a regular file"),
]


@pytest.mark.parametrize(("mode", "owner", "why"), [r[1:] for r in TRIGGERS],
                         ids=[r[0] for r in TRIGGERS])
def test_whose_trigger_counts(mode: int, owner: int, why: str | None) -> None:
    """A regular file of the server's account, root or the code's owner, that no other
    account may write; anything else is refused with the reason."""
    assert trust.refusal(mode, owner, TRUSTED) == why
    state = (1, 0, 7, 1, (mode, owner, owner, 1))
    assert trust.trigger_refusal(state, TRUSTED) == why


@pytest.mark.parametrize(
    ("state", "why"),
    [(None, ""), ((-1, -1, -1, -1, ()), "not a regular file"),
     ((0, 0, 7, 0, ()), "not a regular file")],
    ids=["removed", "unreadable", "link-to-a-directory"],
)
def test_a_trigger_state_without_an_owner_never_counts(state: Stat, why: str) -> None:
    """A removal is no change (the next trigger made is), nor a file we cannot stat."""
    assert trust.trigger_refusal(state, TRUSTED) == why


DIRECTORIES = [
    # (id, mode, owner, group private, why others can create names there: None if not)
    ("tmp-1777-root", DIR | 0o1777, 0, False,
     "world-writable (mode 1777: sticky, yet anyone can create names in it)"),
    ("sticky-1777-deploy", DIR | 0o1777, DEPLOY, True,
     "world-writable (mode 1777: sticky, yet anyone can create names in it)"),
    ("world-0777", DIR | 0o777, DEPLOY, True, "world-writable (mode 0777)"),
    ("world-0703", DIR | 0o703, SERVER, True, "world-writable (mode 0703)"),
    ("group-0775-shared", DIR | 0o775, DEPLOY, False,
     "writable by its group, which has other members (mode 0775)"),
    ("group-2775-shared", DIR | 0o2775, 0, False,
     "writable by its group, which has other members (mode 2775)"),
    ("group-0775-private", DIR | 0o775, DEPLOY, True, None),
    ("deploy-0755", DIR | 0o755, DEPLOY, False, None),
    ("root-0755", DIR | 0o755, 0, False, None),
    ("server-0700", DIR | 0o700, SERVER, False, None),
    ("nobody-0755", DIR | 0o755, NOBODY, True, "owned by uid 65534"),
    ("nobody-0700", DIR | 0o700, NOBODY, True, "owned by uid 65534"),
]


@pytest.mark.parametrize(("mode", "owner", "private", "why"), [r[1:] for r in DIRECTORIES],
                         ids=[r[0] for r in DIRECTORIES])
def test_who_else_can_write_a_directory(mode: int, owner: int, private: bool,
                                        why: str | None, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """World-writable (sticky or not), writable by a group with other members, or owned
    by another account: others can create names there."""
    monkeypatch.setattr(trust, "user_name", lambda uid: f"uid {uid}")
    assert trust.open_to_others(mode, owner, private, TRUSTED) == why


@pytest.fixture
def shared() -> Iterator[Path]:
    """Like the system temp directory: everybody may create names, nobody remove others."""
    path = Path(tempfile.mkdtemp(prefix="rm-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def test_a_trigger_in_a_sticky_directory_is_exposed(shared: Path, tmp_path: Path) -> None:
    """The check at start and in doctor: a sticky 1777 directory is named, with the risk;
    a directory only trusted accounts write is not; a missing parent is judged by the
    directory that would hold it."""
    trusted = trust.accounts(os.geteuid(), None)
    found = trust.exposures(str(shared / "deploy.stamp"), ["/ignored"], trusted)
    assert [(e.path, e.directory) for e in found] == [(str(shared / "deploy.stamp"),
                                                     str(shared))]
    assert "sticky, yet anyone can create names" in found[0].describe()
    assert "trigger's name" in found[0].risk
    assert trust.exposed(str(shared / "new" / "x.stamp"), is_trigger=True,
                         trusted=trusted) is not None
    tmp_path.chmod(0o755)
    assert trust.exposures(str(tmp_path / "deploy.stamp"), [], trusted) == []


def test_a_world_writable_watch_directory_is_exposed(tmp_path: Path) -> None:
    """A watch directory itself open to others: every file added there counts."""
    tmp_path.chmod(0o755)
    (tmp_path / "templates").mkdir(mode=0o755)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads").chmod(0o777)
    trusted = trust.accounts(os.geteuid(), None)
    found = trust.exposures(None, [str(tmp_path / "templates"), str(tmp_path / "uploads")],
                            trusted)
    assert [e.directory for e in found] == [str(tmp_path / "uploads")]
    assert found[0].risk == trust.WATCH_RISK


def test_doctor_names_an_exposed_trigger_with_the_fix() -> None:
    """doctor's advice: the path, the directory, why, and the fix."""
    exposed = trust.Exposed("/srv/shared/deploy.stamp", "/srv/shared",
                            "world-writable (mode 1777)", trust.TRIGGER_RISK)
    advice = doctor.advise(doctor.Facts(exposed=[exposed]))
    assert [a.fix for a in advice] == [trust.FIX]
    assert advice[0].problem.startswith(
        "/srv/shared/deploy.stamp is in /srv/shared, world-writable")
    assert "only the deploy account can write" in trust.FIX


def test_a_refused_trigger_is_said_once_per_owner(caplog: pytest.LogCaptureFixture) -> None:
    """Each reason is said once, naming whose the file is and that nothing happens."""
    trigger = trust.Trigger("/srv/shared/deploy.stamp", TRUSTED, logs.Once())
    nobody = (1, 0, 7, 1, (REG | 0o644, NOBODY, NOBODY, 1))
    for _ in range(3):
        assert not trigger.counts(nobody)
    assert not trigger.counts(None)  # removed: no change, nothing to say
    assert trigger.counts((2, 0, 7, 2, (REG | 0o644, SERVER, SERVER, 1)))
    said = [r.getMessage() for r in caplog.records if "trigger" in r.getMessage()]
    assert len(said) == 1
    assert "owned by uid 65534" in said[0] and "ignored, no action" in said[0]
    assert "only the deploy account can write" in said[0]


def test_the_trigger_path_is_never_resolved(tmp_path: Path) -> None:
    """Relative to the script's directory, normalised, links left as they are."""
    real = tmp_path / "releases" / "3"
    real.mkdir(parents=True)
    (tmp_path / "current").symlink_to(real)
    base = str(tmp_path / "current")
    assert paths.trigger_path("tmp/../deploy.stamp", base) == f"{base}/deploy.stamp"
    (real / "deploy.stamp").symlink_to(tmp_path / "elsewhere")
    assert paths.trigger_path("deploy.stamp", base) == f"{base}/deploy.stamp"


def as_root_chown(path: Path, uid: int) -> None:
    """Give `path` to another account (needs root); in CI a test that cannot is a failure."""
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("giving a file to another uid needs root")
        pytest.skip("giving a file to another uid needs root")
    os.chown(path, uid, uid, follow_symlinks=False)


def test_a_trigger_of_the_code_owner_is_touched(tmp_path: Path) -> None:
    """A trusted account's trigger (the deploy account's, writable by us) is touched like
    ours; another account's is not."""
    trigger = tmp_path / "deploy.stamp"
    trigger.write_text("")
    as_root_chown(trigger, DEPLOY)
    os.utime(trigger, ns=(10**18, 10**18))
    with pytest.raises(OSError, match="owned by uid 1000"):
        state_dir.touch_outside(str(trigger), frozenset({os.geteuid()}))
    assert os.stat(trigger).st_mtime_ns == 10**18
    state_dir.touch_outside(str(trigger), frozenset({os.geteuid(), DEPLOY}))
    assert os.stat(trigger).st_mtime_ns != 10**18


def test_events_of_a_refused_trigger_are_not_recorded(tmp_path: Path) -> None:
    """The watcher's side: an event at the trigger's name counts only for an accepted
    file, so a neighbour touching theirs never raises the flag (nor holds requests in a
    storm wait)."""
    trigger = tmp_path / "deploy.stamp"
    trigger.write_text("")
    changes = Changes()
    changes.baseline([str(trigger)])
    changes.finish(changes.take(), acted=False)
    judge = trust.Trigger(str(trigger), frozenset({os.geteuid()}), logs.Once())
    registration = Registration(changes, frozenset({str(trigger)}), trigger=judge)
    as_root_chown(trigger, NOBODY)
    registration.route(str(trigger), is_directory=False)
    assert changes.pending == frozenset() and not changes.dirty
    os.chown(trigger, os.geteuid(), os.getgid())
    registration.route(str(trigger), is_directory=False)
    assert changes.pending == {str(trigger)}


def test_a_refused_trigger_found_without_an_event_does_not_count(tmp_path: Path) -> None:
    """The latch's side (a safety-net look, a change before watching began): a trigger
    refused as it is now is dropped and baselined, so only a later accepted one counts."""
    trigger = tmp_path / "deploy.stamp"
    changes = Changes()
    changes.baseline([str(trigger)])  # absent
    (tmp_path / "ours").write_text("")
    trigger.symlink_to(tmp_path / "ours")  # to a file of ours: the link is judged
    judge = trust.Trigger(str(trigger), frozenset({os.geteuid()}), logs.Once())
    changes.sweep()

    def counts(path: str, state: Stat) -> bool:
        return path != judge.path or judge.looked()

    assert changes.take(counts=counts).paths == frozenset()
    trigger.unlink()
    trigger.write_text("")
    changes.record(str(trigger))
    assert changes.take(counts=counts).paths == {str(trigger)}


@pytest.mark.parametrize("target", ["private.key", "made-by-us"], ids=["to-a-0600-file",
                                                                       "dangling"])
def test_a_link_planted_at_the_trigger_neither_reloads_nor_is_followed_by_a_post(
    project: MakeProject, tmp_path: Path, target: str, caplog: pytest.LogCaptureFixture,
    until: Until,
) -> None:
    """Through the middleware: a link made at the trigger's name is no change, and a POST
    neither touches its target (a 0600 file of ours) nor creates one where it points."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(control="/__reload__", secret=SECRET, trigger="deploy.stamp")
    app = made.application
    assert call(app).status == "200 OK"
    aim = tmp_path / target
    if target == "private.key":
        aim.write_text("secret")
        aim.chmod(0o600)
        os.utime(aim, ns=(10**18, 10**18))
    (made.root / "deploy.stamp").symlink_to(aim)
    until(lambda: any("a symbolic link" in r.getMessage() for r in caplog.records))
    assert call(app).status == "200 OK"
    assert not any("changed: reload" in r.getMessage() for r in caplog.records)
    posted = call(app, "POST", "/__reload__", {"HTTP_AUTHORIZATION": f"Bearer {SECRET}"})
    assert posted.status == "202 Accepted"
    if target == "private.key":
        assert os.stat(aim).st_mtime_ns == 10**18
    else:
        assert not os.path.lexists(aim)
    assert any("reloads this process only" in r.getMessage() for r in caplog.records)
    said = [r.getMessage() for r in caplog.records if "a symbolic link" in r.getMessage()]
    assert len(said) == 1 and "ignored, no action" in said[0]


def test_another_accounts_trigger_restarts_nothing(
    project: MakeProject, caplog: pytest.LogCaptureFixture, until: Until
) -> None:
    """A trigger given to another account and touched: no reload, said once; ours again
    and touched: it reloads as before."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(trigger="deploy.stamp")
    trigger = made.root / "deploy.stamp"
    app = made.application
    assert call(app).status == "200 OK"
    trigger.write_text("")
    as_root_chown(trigger, NOBODY)
    for n in range(3):
        os.utime(trigger, ns=(10**18 + n, 10**18 + n))
        until(lambda: any("owned by uid 65534" in r.getMessage() for r in caplog.records))
        assert call(app).status == "200 OK"
    assert not any("changed: reload" in r.getMessage() for r in caplog.records)
    said = [r.getMessage() for r in caplog.records if "owned by uid 65534" in r.getMessage()]
    assert len(said) == 1 and "ignored, no action" in said[0]
    os.chown(trigger, os.geteuid(), os.getgid())
    os.utime(trigger)
    until(lambda: str(trigger) in app.pending)
    assert call(app).status == "200 OK"
    assert any("changed: reload" in r.getMessage() for r in caplog.records)


def test_the_start_line_names_a_trigger_others_can_write_beside(
    project: MakeProject, shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As watching begins the log names the shared directory, the risk and the fix, once."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    app = project(trigger=str(shared / "deploy.stamp")).application
    for _ in range(3):
        assert call(app).status == "200 OK"
    said = [r.getMessage() for r in caplog.records if "is in" in r.getMessage()]
    assert len(said) == 1
    assert f"{shared / 'deploy.stamp'} is in {shared}, world-writable" in said[0]
    assert trust.TRIGGER_RISK in said[0] and trust.FIX in said[0]
