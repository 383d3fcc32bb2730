"""Whose files count? The trigger's owner, and who else can write where we watch.

Another local account can create names in a shared directory (the system temp
directory, any world- or group-writable one): a trigger it makes there, or a file it
adds to a watch directory, must not restart the server's processes. Trusted are the
server's account (the effective uid), root and the code's owner (the account that
deploys: the owner of the script); every rule here is a pure function of stat results
and uids, so it is table-tested, and the few lookups that feed them are kept apart.

    trusted = accounts(os.geteuid(), code_owner("/srv/app/app.wsgi"))
    info = os.lstat("/srv/app/deploy.stamp")
    why = refusal(info.st_mode, info.st_uid, trusted)              # None: it counts
    exposed("/srv/shared/x.stamp", is_trigger=True, trusted=trusted)  # the start's warning
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from .. import logs
from .file_state import Stat

ROOT = 0
FIX = "use a directory only the deploy account can write (and the server's account read)"
TRIGGER_RISK = (
    "another account can put a file or a link at the trigger's name before the deploy "
    "makes it (that trigger is ignored, so deploys stop reloading)"
)
WATCH_RISK = "another account can add files there, and each counts as a code change"


def accounts(euid: int, owner: int | None) -> frozenset[int]:
    """The uids whose files and directories are trusted: the server's, root, the code's.

    >>> sorted(accounts(33, 1000)), sorted(accounts(33, None))
    ([0, 33, 1000], [0, 33])
    """
    return frozenset({euid, ROOT} | ({owner} if owner is not None else set()))


def code_owner(script: str | None) -> int | None:
    """The owner of the script (through links: the file the server runs), or None."""
    if script is None:
        return None
    try:
        return os.stat(script).st_uid
    except OSError:
        return None


def user_name(uid: int) -> str:
    """`uid 65534 (nobody)`, or just the uid where it has no name: for log lines."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def refusal(mode: int, uid: int, trusted: frozenset[int]) -> str | None:
    """Why a file of this mode and owner is no trigger, or None when it counts: a regular
    file of a trusted account that no other account may write (anyone may touch a file
    they can write: its mtime moves as well for them).

    >>> refusal(0o100644, 33, frozenset({0, 33})) is None
    True
    >>> refusal(0o100644, 65534, frozenset({0, 33}))
    'owned by uid 65534'
    """
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if uid not in trusted:
        return f"owned by uid {uid}"
    if mode & stat.S_IWOTH:
        return f"writable by every account (mode {stat.S_IMODE(mode):04o})"
    return None


def trigger_refusal(state: Stat, trusted: frozenset[int]) -> str | None:
    """`refusal()` for a file state as the latch keeps it (file_state.Stat); "" when
    there is no file (a removed trigger is no change: the next one made is)."""
    if state is None:
        return ""
    meta = state[4]
    if len(meta) < 2:  # unreadable, or a link to a directory
        return "not a regular file"
    return refusal(meta[0], meta[1], trusted)


class Trigger:
    """The trigger file and whose it may be: its events and its state count only when
    `looked()` says so, and each refusal is said once per process (`told`)."""

    def __init__(self, path: str, trusted: frozenset[int], told: logs.Once) -> None:
        self.path = path
        self.trusted = trusted
        self._told = told

    def looked(self) -> bool:
        """Whether the trigger, as `os.lstat` finds it now (a link is a link: the latch's
        states follow links to files), may cause an action."""
        try:
            info = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return self.counts(None)
        except OSError:
            return self.counts((-1, -1, -1, -1, ()))
        meta = (info.st_mode, info.st_uid, info.st_gid, info.st_nlink)
        return self.counts((info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns, meta))

    def counts(self, state: Stat) -> bool:
        """Whether the trigger in `state` (its own, not a link's target) may cause an
        action; a refusal is said once for each reason."""
        why = trigger_refusal(state, self.trusted)
        if why is None:
            return True
        if why and self._told.first(("trigger", self.path, why)):
            if state is not None and why.startswith("owned by uid "):
                why = f"owned by {user_name(state[4][1])}"
            logs.error(
                "trigger %s is %s: ignored, no action (a trigger counts only as a regular "
                "file of %s that no other account may write); %s",
                self.path, why, ", ".join(user_name(u) for u in sorted(self.trusted)), FIX)
        return False


def open_to_others(mode: int, owner: int, group_private: bool, trusted: frozenset[int]
                   ) -> str | None:
    """Why accounts other than the trusted ones can create or replace names in a directory
    of this mode and owner, or None. `group_private`: every member of its group is
    trusted (a deploy account's own group). The sticky bit does not help: anyone still
    creates new names, and the trigger's name is new until the deploy makes it.

    >>> open_to_others(0o41777, 0, False, frozenset({0, 33}))
    'world-writable (mode 1777: sticky, yet anyone can create names in it)'
    >>> open_to_others(0o40755, 1000, True, frozenset({0, 33, 1000})) is None
    True
    """
    bits = stat.S_IMODE(mode)
    if owner not in trusted:
        return f"owned by {user_name(owner)}"
    if bits & stat.S_IWOTH:
        sticky = ": sticky, yet anyone can create names in it" if bits & stat.S_ISVTX else ""
        return f"world-writable (mode {bits:04o}{sticky})"
    if bits & stat.S_IWGRP and not group_private:
        return f"writable by its group, which has other members (mode {bits:04o})"
    return None


def group_private(gid: int, trusted: frozenset[int]) -> bool:
    """Whether only trusted accounts belong to group `gid` (as members, or by their
    primary group). An unknown group is not private."""
    try:
        members = grp.getgrgid(gid).gr_mem
    except KeyError:
        return False
    uids: set[int] = set()
    for name in members:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    uids |= {user.pw_uid for user in pwd.getpwall() if user.pw_gid == gid}
    return uids <= trusted


@dataclass(frozen=True)
class Exposed:
    """A trigger or watch path that other accounts can reach through `directory`."""

    path: str
    directory: str
    why: str
    risk: str

    def describe(self) -> str:
        return f"{self.path} is in {self.directory}, {self.why}: {self.risk}"


def holder(path: str) -> str:
    """The directory whose names decide `path`: its nearest existing parent."""
    parent = os.path.dirname(path)
    while parent != os.path.dirname(parent) and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    return parent


def exposed(path: str, *, is_trigger: bool, trusted: frozenset[int]) -> Exposed | None:
    """The start's and the doctor's check of one trigger or watch path: the directory it
    is in (and a watch directory itself, whose files all count), if others can write it."""
    places = [holder(path)]
    if not is_trigger and os.path.isdir(path) and not os.path.islink(path):
        places.insert(0, path)
    for directory in places:
        try:
            info = os.stat(directory)
        except OSError:
            continue
        private = group_private(info.st_gid, trusted) if info.st_mode & stat.S_IWGRP else True
        why = open_to_others(info.st_mode, info.st_uid, private, trusted)
        if why is not None:
            return Exposed(path, directory, why, TRIGGER_RISK if is_trigger else WATCH_RISK)
    return None


def exposures(trigger: str | None, watch: Iterable[str], trusted: frozenset[int]
              ) -> list[Exposed]:
    """Every trigger or watch path (the trigger alone when one is set) that is exposed."""
    found = [exposed(trigger, is_trigger=True, trusted=trusted)] if trigger else [
        exposed(p, is_trigger=False, trusted=trusted) for p in watch]
    return [e for e in found if e is not None]
