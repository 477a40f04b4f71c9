"""The one exception tree of the biobank package.

Every error the library raises on purpose is a :class:`BiobankError`; the
``biobank`` command turns any of them into a one-line message and exit code 1
(see :func:`biobank.cli.main`). Errors of third-party libraries and external
tools are translated at the boundary with ``raise ... from exc``.

::

    BiobankError
    ├── ValidationError        bad input: carries file, line, field, value
    │   └── ImportRejected     an all-or-nothing import found bad rows: carries every problem
    ├── NotFoundError          a participant, specimen, variant, cohort ... does not exist
    ├── ConflictError          a duplicate label, an occupied freezer position, a re-registration
    ├── AccessDenied           the principal's role does not permit the action
    │   ├── QuotaExceeded      a requester used up its query budget (Beacon, federation)
    │   └── DisclosureRefused  an aggregate output failed disclosure control (differencing ...)
    ├── ConsentError           consent does not permit the use, or was withdrawn
    ├── StoreError             the DuckDB store cannot be opened, migrated or written
    │   └── AuditIntegrityError the audit chain was edited or truncated
    ├── ConfigError            a configuration file or setting is invalid or missing
    └── ExternalToolError      an external program failed: carries command, exit code, stderr
        └── ToolNotFoundError  a required program is not installed: names the package
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AccessDenied",
    "AuditIntegrityError",
    "BiobankError",
    "ConfigError",
    "ConflictError",
    "ConsentError",
    "DisclosureRefused",
    "ExternalToolError",
    "ImportRejected",
    "NotFoundError",
    "Problem",
    "QuotaExceeded",
    "StoreError",
    "ToolNotFoundError",
    "ValidationError",
]


class BiobankError(Exception):
    """Root of every error raised on purpose by :mod:`biobank`."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input, with where it is and how to fix it.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    file
        The input file (or ``None`` for API input).
    line
        1-based line number in ``file`` (the header is line 1), if known.
    field
        The column, key path or field name, if known.
    value
        The offending value as read, if any.
    """

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        shown = f" (value {self.value!r})" if self.value is not None else ""
        return f"{prefix}: {self.message}{shown}" if prefix else f"{self.message}{shown}"


class ValidationError(BiobankError, ValueError):
    """An input value, row, file or request is invalid.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    file, line, field, value
        Where the problem is; see :class:`Problem`.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        self.problem = Problem(
            message,
            file=str(file) if file is not None else None,
            line=line,
            field=field,
            value=None if value is None else str(value),
        )
        self.file = self.problem.file
        self.line = line
        self.field = field
        self.value = self.problem.value
        super().__init__(str(self.problem))


class ImportRejected(ValidationError):
    """An all-or-nothing import found one or more bad rows and wrote nothing.

    Parameters
    ----------
    problems
        Every problem found, in input order.
    file
        The input file.
    """

    def __init__(self, problems: Sequence[Problem], *, file: str | Path | None = None) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found, nothing was written"
        super().__init__(head, file=file)
        self.args = (head + "\n" + "\n".join(f"  - {p}" for p in self.problems),)

    def __str__(self) -> str:
        return str(self.args[0])


class NotFoundError(BiobankError, LookupError):
    """A requested record (participant, specimen, variant, cohort, user) does not exist."""


class ConflictError(BiobankError):
    """The write conflicts with existing state (duplicate, occupied position)."""


class AccessDenied(BiobankError, PermissionError):
    """The acting user's role does not permit the requested action.

    Attributes
    ----------
    audited
        ``True`` once the refusal is in the audit log: the library function
        that refused recorded it (:meth:`mark_audited`), so an outer layer (the
        command line) does not record it a second time.
    """

    audited: bool = False

    def mark_audited(self) -> AccessDenied:
        """Note that the refusal has been audited; return the error (to raise it)."""
        self.audited = True
        return self


class QuotaExceeded(AccessDenied):
    """A requester used up its query budget (re-identification defence of the Beacon)."""


class DisclosureRefused(AccessDenied):
    """An aggregate output failed disclosure control and is not shown."""


class ConsentError(BiobankError):
    """Consent does not permit the requested use, or has been withdrawn."""


class StoreError(BiobankError):
    """The store cannot be opened, migrated, read or written."""


class AuditIntegrityError(StoreError):
    """The audit log's hash chain is broken: an entry was edited, inserted or deleted."""


class ConfigError(BiobankError):
    """A configuration file or setting is invalid or missing."""


class ExternalToolError(BiobankError):
    """An external program (bcftools, plink2, bwa ...) failed.

    Parameters
    ----------
    command
        The command line that was run.
    returncode
        Its exit code.
    stderr
        What it printed on standard error (trimmed to the last 2,000 characters).
    """

    def __init__(self, command: Sequence[str], returncode: int, stderr: str = "") -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr[-2000:]
        last = self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""
        super().__init__(
            f"{self.command[0]} failed with exit code {returncode}: {last}".rstrip(": ")
        )


class ToolNotFoundError(ExternalToolError):
    """A required external program is not installed.

    Parameters
    ----------
    tool
        The program name.
    package
        The Debian package that provides it.
    """

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        BiobankError.__init__(
            self,
            f"'{tool}' is not installed: install the Debian package '{package}' "
            f"(sudo apt-get install {package})",
        )
        self.command = [tool]
        self.returncode = 127
        self.stderr = ""
