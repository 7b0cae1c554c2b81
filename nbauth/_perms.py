"""Ownership and mode checks on files nbauth reads its configuration from (ssh's StrictModes)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ._errors import ConfigurationError

__all__ = ["refuse_unsafe_config"]


def refuse_unsafe_config(path: Path, st: os.stat_result) -> None:
    """Refuse a profile file others could have written, as ssh's StrictModes does.

    A profile names the token endpoint a password or client secret is sent to, so whoever can
    write the file (or swap it in its directory) can collect them: the file and its directory
    must belong to the user (or root) and not be writable by group or others.
    """
    if os.name == "nt":
        return
    uid = os.getuid()
    real = Path(os.path.realpath(path))
    checks = [(real, st)]
    with contextlib.suppress(OSError):
        checks.append((real.parent, os.stat(real.parent)))
    for where, info in checks:
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_uid not in (uid, 0):
            raise ConfigurationError(
                f"refusing the profile file {path}: {where} belongs to another user (uid {info.st_uid}), who "
                f"could point your logins elsewhere; copy it to a file of your own, or run `chown {uid} {where}`"
            )
        if stat.S_IMODE(info.st_mode) & 0o022 and not sticky_dir:
            raise ConfigurationError(
                f"refusing the profile file {path}: {where} is writable by other users (mode "
                f"{stat.S_IMODE(info.st_mode):o}); run `chmod go-w {where}`"
            )
