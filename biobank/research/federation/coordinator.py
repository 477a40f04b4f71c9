"""The coordinator: one question to N centres, answers combined, missing centres named.

Each centre runs ``biobank serve`` and has registered the coordinator as a
partner (``biobank partner add``); the coordinator holds one token per centre
(``centres.yaml``, :func:`load_centres`) and sends it as ``Authorization:
Bearer``. Only aggregates travel: counts, allele counts, and for a logistic
model the per-centre gradient and information matrix at the current
coefficients (Newton-Raphson on the summed statistics equals the pooled fit,
as in DataSHIELD's federated GLM).

A centre that is down, times out or refuses yields a *partial* answer:
:attr:`Federated.missing` names it and why, and totals cover only the centres
in :attr:`Federated.centres`. A logistic fit that loses a centre mid-run starts
again without it, so its coefficients are always those of the pooled data of
the centres it names.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biobank.core.errors import ConfigError, ValidationError

__all__ = [
    "Centre",
    "Federated",
    "Federation",
    "LogisticFit",
    "federated_count",
    "federated_frequencies",
    "federated_logistic",
    "load_centres",
]


@dataclass(frozen=True)
class Centre:
    """A centre: its name, the base URL of its ``biobank serve``, the token it issued us."""

    name: str
    url: str
    token: str = field(repr=False)


def load_centres(path: str | os.PathLike[str]) -> list[Centre]:
    """Read ``centres.yaml``: ``centres: [{name, url, token | token_env}]``.

    Raises
    ------
    ConfigError
        Naming the file and the entry that is incomplete.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the centres file {path}: {exc}") from exc
    items = data.get("centres") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: give 'centres:' as a list of {{name, url, token}}")
    out = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("name") or not item.get("url"):
            raise ConfigError(f"{path}: centre {i} needs a name and a url")
        token = item.get("token") or os.environ.get(str(item.get("token_env", "")), "")
        if not token:
            raise ConfigError(f"{path}: centre {item['name']} needs token or token_env")
        out.append(Centre(str(item["name"]), str(item["url"]).rstrip("/"), str(token)))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: centre names must be unique")
    return out


@dataclass
class Federated:
    """A combined answer: the value, per-centre parts, and the centres missing (why)."""

    value: Any
    centres: list[str]
    missing: dict[str, str]
    per_centre: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every centre answered."""
        return not self.missing


class Federation:
    """Sends a question to every centre at once (threads) and collects the answers.

    Parameters
    ----------
    centres
        The centres asked.
    timeout
        Seconds to wait for each centre's answer.
    """

    def __init__(self, centres: list[Centre], *, timeout: float = 30.0) -> None:
        if not centres:
            raise ValidationError("a federation needs at least one centre", field="centres")
        self.centres = list(centres)
        self.timeout = timeout

    def _ask_one(self, centre: Centre, kind: str, question: dict[str, Any]) -> tuple[str, Any]:
        import httpx

        try:
            response = httpx.post(
                f"{centre.url}/api/federation/{kind}",
                json=question,
                headers={"Authorization": f"Bearer {centre.token}"},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            return "error", f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return "error", f"unreachable ({type(exc).__name__})"
        if response.status_code != 200:
            try:
                detail = response.json()["error"]["detail"]
            except (ValueError, KeyError, TypeError):
                detail = response.text[:200]
            verb = "refused" if response.status_code in (401, 403) else "failed"
            return "error", f"{verb} (HTTP {response.status_code}): {detail}"
        try:
            return "ok", response.json()
        except ValueError:
            return "error", "answered with something other than JSON"

    def ask(
        self, kind: str, question: dict[str, Any], centres: list[Centre] | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Ask ``centres`` (default all); return (answers by centre, failures by centre)."""
        targets = self.centres if centres is None else centres
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            results = list(pool.map(lambda c: self._ask_one(c, kind, question), targets))
        answers = {c.name: r for c, (s, r) in zip(targets, results, strict=True) if s == "ok"}
        failed = {c.name: r for c, (s, r) in zip(targets, results, strict=True) if s != "ok"}
        return answers, failed


def federated_count(federation: Federation, filters: list[Any] | None = None) -> Federated:
    """Participants the Beacon ``filters`` select, summed over the centres.

    A centre whose count is small (suppressed) is listed in ``missing``: the
    total is then over the other centres, never a silent undercount.
    """
    answers, missing = federation.ask("count", {"filters": filters or []})
    total, centres = 0, []
    for name, a in answers.items():
        if a.get("n") is None and (a.get("suppressed") or a.get("reason")):
            missing[name] = f"withheld by the centre's output checks: {a.get('reason')}"
            continue
        total += int(a["n"])
        centres.append(name)
    return Federated(total, centres, missing, {k: v.get("n") for k, v in answers.items()})


def federated_frequencies(
    federation: Federation,
    region: str,
    *,
    cohorts: list[str] | None = None,
    filters: list[Any] | None = None,
) -> Federated:
    """ALT allele counts and frequencies per variant and cohort (``all`` = every participant).

    Value: ``{cohort: {variant: {"alt_allele_count", "allele_total",
    "alt_allele_frequency", "centres": [...], "suppressed_at": [...]}}}``. A
    variant is summed over the centres whose stores hold it (``centres``: a
    centre that did not genotype it says nothing about it); a variant
    suppressed at some centre has ``None`` totals and names those centres.
    """
    answers, missing = federation.ask(
        "frequencies", {"region": region, "cohorts": cohorts or [], "filters": filters or []}
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, a in answers.items():
        for cohort, rows in a["cohorts"].items():
            for r in rows:
                cell = out.setdefault(cohort, {}).setdefault(
                    r["variant"],
                    {"alt_allele_count": 0, "allele_total": 0, "centres": [], "suppressed_at": []},
                )
                cell["centres"].append(name)
                if r["suppressed"]:
                    cell["suppressed_at"].append(name)
                else:
                    cell["alt_allele_count"] += r["alt_allele_count"]
                    cell["allele_total"] += r["allele_total"]
    for cells in out.values():
        for cell in cells.values():
            if cell["suppressed_at"]:
                cell["alt_allele_count"] = cell["allele_total"] = None
            n = cell["allele_total"]
            cell["alt_allele_frequency"] = cell["alt_allele_count"] / n if n else None
    return Federated(out, sorted(answers), missing)


@dataclass
class LogisticFit:
    """A federated logistic fit (equal to the pooled fit over :attr:`centres`)."""

    columns: list[str]
    beta: np.ndarray
    standard_error: np.ndarray
    n: int
    n_cases: int
    loglik: float
    iterations: int
    centres: list[str]
    missing: dict[str, str]


def federated_logistic(
    federation: Federation,
    outcome: str,
    covariates: list[str],
    *,
    reference_year: int,
    filters: list[Any] | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> LogisticFit:
    """Fit ``outcome ~ covariates`` by Newton-Raphson on summed per-centre statistics.

    Each iteration sends the current coefficients; each centre returns
    X'(y - p), X'WX and its log-likelihood; the coordinator sums them and
    steps ``beta += (sum X'WX)^-1 (sum X'(y - p))`` until the step is below
    ``tol``. Standard errors are the square roots of the diagonal of the
    inverse summed information at the optimum (as statsmodels ``Logit``).

    Raises
    ------
    ValidationError
        If no centre is left to fit, or the fit does not converge.
    """
    question: dict[str, Any] = {
        "outcome": outcome,
        "covariates": list(covariates),
        "reference_year": reference_year,
        "filters": filters or [],
    }
    missing: dict[str, str] = {}
    active = list(federation.centres)
    while True:
        if not active:
            raise ValidationError(
                "no centre could answer: " + "; ".join(f"{k}: {v}" for k, v in missing.items()),
                field="centres",
            )
        beta: np.ndarray | None = None
        for iteration in range(1, max_iter + 1):
            answers, failed = federation.ask(
                "logistic", {**question, "beta": None if beta is None else beta.tolist()}, active
            )
            if failed:  # start again without them: the fit stays a pooled fit
                missing.update(failed)
                active = [c for c in active if c.name not in failed]
                break
            parts = list(answers.values())
            grad = np.sum([np.asarray(a["gradient"]) for a in parts], axis=0)
            info = np.sum([np.asarray(a["information"]) for a in parts], axis=0)
            if beta is None:
                beta = np.zeros(len(grad))
            step = np.linalg.solve(info, grad)
            beta = beta + step
            if float(np.max(np.abs(step))) < tol:
                final, failed = federation.ask(
                    "logistic", {**question, "beta": beta.tolist()}, active
                )
                if failed:
                    missing.update(failed)
                    active = [c for c in active if c.name not in failed]
                    break
                info = np.sum([np.asarray(a["information"]) for a in final.values()], axis=0)
                cov = np.linalg.inv(info)
                return LogisticFit(
                    columns=list(parts[0]["columns"]),
                    beta=beta,
                    standard_error=np.sqrt(np.diag(cov)),
                    n=sum(int(a["n"]) for a in final.values()),
                    n_cases=sum(int(a["n_cases"]) for a in final.values()),
                    loglik=float(sum(a["loglik"] for a in final.values())),
                    iterations=iteration,
                    centres=[c.name for c in active],
                    missing=missing,
                )
        else:
            raise ValidationError(
                f"the federated logistic fit did not converge in {max_iter} iterations",
                field="max_iter",
            )
