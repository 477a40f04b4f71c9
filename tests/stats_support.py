"""Shared helpers of the statistics tests (tests/stats): plink2 runs and their
outputs, and the cohorts (a loaded store with plink2's results on the same VCFs).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from biobank.core.access import Principal, Role
from biobank.core.store import Store

__all__ = [
    "LOADER",
    "SHARED",
    "Cohort",
    "bgzip",
    "cases_controls",
    "keyed",
    "plink",
    "plink_all",
    "plink_linear",
    "read_plink",
    "split_alts",
]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "1kg-phase3-subset"


LOADER = Principal("reg", Role.REGISTRAR)


def plink(args: list[str], out: Path) -> None:
    subprocess.run(
        ["plink2", *args, "--allow-extra-chr", "--threads", "1", "--out", str(out)],
        check=True,
        capture_output=True,
    )


def split_alts(df: pl.DataFrame, value: str) -> pl.DataFrame:
    """One row per ALT allele of plink2 .afreq output (multi-allelic rows list them)."""
    return (
        df.with_columns(pl.col("ALT").str.split(","), pl.col(value).cast(pl.String).str.split(","))
        .explode("ALT", value)
        .with_columns(pl.col(value).cast(pl.Float64))
    )


def keyed(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        key=pl.format(
            "{}:{}", pl.col("variant_contig").str.strip_prefix("chr"), pl.col("variant_position")
        )
    )


@dataclass
class Cohort:
    """A loaded store, the plink2 outputs on the same genotypes and the phenotype table."""

    store: Store
    freq: pl.DataFrame
    vmiss: pl.DataFrame
    hardy: pl.DataFrame
    glm: pl.DataFrame
    pheno: pl.DataFrame  # participant_id, status, covariates
    covariates: list[str]
    vcfs: list[Path]


def plink_all(vcf: Path, pheno: Path, covars: list[str], out: Path) -> dict[str, pl.DataFrame]:
    plink(
        [
            "--vcf",
            str(vcf),
            "--set-all-var-ids",
            "@:#:$r:$a",
            "--new-id-max-allele-len",
            "1000",
            "--freq",
            "--missing",
            "variant-only",
            "--hardy",
            "--pheno",
            str(pheno),
            "--pheno-name",
            "status",
            "--1",
            "--covar",
            str(pheno),
            "--covar-name",
            ",".join(covars),
            "--glm",
            "hide-covar",
            "cols=+a1count,+firth",
        ],
        out,
    )
    return read_plink(out, ("freq", "vmiss", "hardy", "glm"))


def plink_linear(vcf: Path, pheno: Path, trait: str, covars: list[str], out: Path) -> pl.DataFrame:
    """``plink2 --glm`` of a quantitative ``trait`` (its ``.glm.linear``), with a ``key``."""
    plink(
        [
            *("--vcf", str(vcf), "--set-all-var-ids", "@:#:$r:$a"),
            *("--new-id-max-allele-len", "1000"),
            *("--pheno", str(pheno), "--pheno-name", trait),
            *("--covar", str(pheno), "--covar-name", ",".join(covars)),
            *("--glm", "hide-covar"),
        ],
        out,
    )
    return pl.read_csv(
        f"{out}.{trait}.glm.linear", null_values="NA", separator="\t", infer_schema_length=0
    ).with_columns(key=pl.format("{}:{}", pl.col("#CHROM").str.strip_prefix("chr"), pl.col("POS")))


def read_plink(out: Path, names: Sequence[str]) -> dict[str, pl.DataFrame]:
    """plink2's ``.afreq``/``.vmiss``/``.hardy(.x)``/glm outputs with a ``key`` (contig:position).

    The per-variant files need IDs set with ``--set-all-var-ids @:#:$r:$a``.
    """
    read = {"null_values": "NA", "separator": "\t", "infer_schema_length": 0}
    suffix = {"freq": "afreq", "vmiss": "vmiss", "hardy": "hardy", "hardy.x": "hardy.x"}
    out_ = {}
    for name in names:
        if name == "glm":
            out_[name] = pl.read_csv(f"{out}.status.glm.logistic.hybrid", **read).with_columns(
                key=pl.format("{}:{}", pl.col("#CHROM").str.strip_prefix("chr"), pl.col("POS"))
            )
        else:
            out_[name] = pl.read_csv(f"{out}.{suffix[name]}", **read).with_columns(
                key=pl.col("ID")
                .str.strip_prefix("chr")
                .str.split(":")
                .list.slice(0, 2)
                .list.join(":")
            )
    return out_


def bgzip(path: Path) -> Path:
    subprocess.run(["bgzip", "-f", str(path)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", f"{path}.gz"], check=True)
    return Path(f"{path}.gz")


def cases_controls(
    pheno: pl.DataFrame, covariates: Sequence[str]
) -> tuple[list[str], list[str], pl.DataFrame]:
    cases = pheno.filter(pl.col("status") == 1)["participant_id"].to_list()
    controls = pheno.filter(pl.col("status") == 0)["participant_id"].to_list()
    return cases, controls, pheno.select("participant_id", *covariates)
