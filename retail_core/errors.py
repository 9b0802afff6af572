"""Errors a user can fix. The CLI prints them as one line and exits non-zero; anything else is a bug."""

from __future__ import annotations

import errno


class PipelineError(Exception):
    """A failure the user can act on: what failed, where, and what to do about it.

    ``exit_code`` lets the CLI tell kinds of failure apart (2: bad input or configuration,
    3: a quality gate said no, 4: an upstream service failed).
    """

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, todo: str | None = None) -> None:
        self.what = what
        self.where = where
        self.todo = todo
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"({self.where})")
        line = " ".join(parts)
        if self.todo:
            line += f": {self.todo}"
        # One line, whatever the pieces held.
        return " ".join(line.split())


class InputError(PipelineError):
    """The input (a file, a download, a flag) is not what the pipeline accepts."""

    exit_code = 2


class QualityGateError(PipelineError):
    """The data was read but failed a quality threshold; the last good output is left in place."""

    exit_code = 3


class UpstreamError(PipelineError):
    """A service the pipeline depends on (Kaggle, S3) failed after retries."""

    exit_code = 4


def os_error_line(exc: OSError) -> str:
    """An OSError (ENOSPC, EIO, EACCES...) as one actionable line; the last good output was left in place."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if isinstance(exc.filename, str) else None
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        # A path mixed up with a file (a --lake or --duckdb-path naming a file, a folder where a file goes): no
        # amount of disk space helps.
        todo = "a file and a folder are mixed up on that path: point the flag elsewhere or move what is there"
    else:
        todo = "free disk space or fix permissions, then run again (the last good output was kept)"
    return UpstreamError(f"the machine refused a write or read: {what}", where, todo).one_line()
