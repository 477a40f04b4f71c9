"""Call-set comparison against a truth VCF: precision, recall, F1, genotype concordance.

Both call sets are normalised the same way first (``bcftools norm -m -any -f
REF``: multi-allelic records split, indels left-aligned and trimmed against
the reference), optionally restricted to confident regions (a BED file), and
then matched like hap.py's allele-level counting: a variant is its
``(contig, position, REF, ALT)`` (position 1-based) where the sample's genotype
carries the ALT allele.

* **TP**: in both; **FN**: in the truth only; **FP**: in the query only.
* precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic mean.
* genotype concordance = TP whose zygosity agrees / TP. Zygosity is ``hom``
  when every allele of the genotype is this ALT (``1/1``, or a haploid ``1``)
  and ``het`` otherwise (``0/1``; a ``1/2`` becomes ``1/0`` and ``0/1`` after
  splitting).

Counts are reported separately for SNPs (REF and ALT one base), INDELs (REF and
ALT lengths differ) and, when present, OTHER (MNPs and complex substitutions).
Query records whose FILTER is not PASS are ignored unless ``pass_only=False``;
truth FILTERs are not used. Genotypes that are missing (``./.``) or hom-ref are
not calls.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from biobank.core.errors import ConfigError, NotFoundError, ValidationError
from biobank.core.tools import run_tool

__all__ = ["CallSetComparison", "compare_calls", "normalise_vcf", "read_calls"]

logger = logging.getLogger(__name__)

#: A variant: contig, 1-based position, REF, ALT.
VariantKey = tuple[str, int, str, str]


@dataclass(frozen=True)
class CallSetComparison:
    """Counts and rates for one variant type.

    Attributes
    ----------
    variant_type
        ``SNP``, ``INDEL`` or ``OTHER``.
    truth_total, query_total
        Variants of this type in the truth and (passing) query call sets.
    tp, fp, fn
        True positives, false positives, false negatives.
    precision, recall, f1
        ``None`` when the denominator is zero.
    gt_match, gt_mismatch
        True positives whose zygosity agrees / differs.
    gt_concordance
        ``gt_match / tp`` (``None`` without true positives).
    """

    variant_type: str
    truth_total: int
    query_total: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    gt_match: int
    gt_mismatch: int
    gt_concordance: float | None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for tables and JSON)."""
        return asdict(self)


def _require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{what} {p} does not exist: check the path")
    return p


def normalise_vcf(
    vcf: str | Path,
    out: str | Path,
    *,
    reference: str | Path,
    regions: str | Path | None = None,
) -> Path:
    """Split multi-allelics and left-align against the reference (bcftools norm).

    Parameters
    ----------
    vcf
        Input VCF/BCF (plain or bgzipped; an index is not needed).
    out
        Output VCF (bgzipped; VCF rather than BCF so that a truth set without
        ``##contig`` header lines still works).
    reference
        The reference FASTA (indexed or indexable by samtools faidx).
    regions
        Optional BED file (0-based half-open): only records whose position
        lies inside are kept.

    Raises
    ------
    ExternalToolError
        If bcftools fails (e.g. a REF allele that does not match the reference).
    """
    out = Path(out)
    reference = Path(reference)
    fai = Path(f"{reference}.fai")
    if not fai.is_file():
        fai = out.with_name(f"{out.name}.ref.fai")
        run_tool(["samtools", "faidx", reference, "--fai-idx", fai])
    # Truth sets (GIAB's among them) may lack ##contig lines, which htslib
    # needs to write records: take them from the reference index.
    with_contigs = out.with_name(f"contigs.{out.name}")
    run_tool(["bcftools", "reheader", "--fai", fai, "--output", with_contigs, vcf])
    # Only FILTER and GT are compared: dropping INFO and the other FORMAT
    # fields also drops tags that a truth set uses without declaring them
    # (--force lets bcftools pass over those undeclared tags).
    genotypes = out.with_name(f"gt.{out.name}")
    run_tool(
        [
            "bcftools",
            "annotate",
            "--force",
            "--remove",
            "INFO,^FORMAT/GT",
            "--output-type",
            "u",
            "--output",
            genotypes,
            with_contigs,
        ]
    )
    target = out if regions is None else out.with_name(f"all.{out.name}")
    run_tool(
        [
            "bcftools",
            "norm",
            "--multiallelics",
            "-any",
            "--fasta-ref",
            reference,
            "--output-type",
            "z",
            "--output",
            target,
            genotypes,
        ]
    )
    if regions is not None:
        run_tool(
            [
                "bcftools",
                "view",
                "--targets-file",
                regions,
                "--output-type",
                "z",
                "--output",
                out,
                target,
            ]
        )
    return out


def _variant_type(ref: str, alt: str) -> str:
    if len(ref) == 1 and len(alt) == 1:
        return "SNP"
    if len(ref) != len(alt):
        return "INDEL"
    return "OTHER"


def _pick_sample(samples: list[str], wanted: str | None, path: Path, *, strict: bool) -> int:
    if wanted is not None and wanted in samples:
        return samples.index(wanted)
    if wanted is not None and strict:
        raise ValidationError(
            f"sample '{wanted}' is not in {path} (it has: {', '.join(samples[:10])}): "
            "give one of its samples with --sample",
            file=path,
            field="sample",
            value=wanted,
        )
    if len(samples) == 1:
        return 0
    if not samples:
        raise ValidationError(f"{path} has no samples (no genotypes to compare)", file=path)
    raise ValidationError(
        f"{path} has {len(samples)} samples: choose one with --sample NAME",
        file=path,
        field="sample",
    )


def read_calls(
    vcf: str | Path,
    *,
    sample: str | None = None,
    strict_sample: bool = True,
    pass_only: bool = False,
) -> dict[VariantKey, str]:
    """Read the non-reference calls of one sample from a normalised VCF.

    Parameters
    ----------
    vcf
        A VCF/BCF with one ALT per record (see :func:`normalise_vcf`).
    sample
        The sample to read; ``None`` when the file has exactly one.
    strict_sample
        When ``False``, a single-sample file is used even if its sample has
        another name (a truth set named differently from the query).
    pass_only
        Skip records whose FILTER is set and not PASS.

    Returns
    -------
    dict
        ``{(contig, pos (1-based), REF, ALT): "het" | "hom"}``.

    Raises
    ------
    ValidationError
        If the sample is not in the file, or none was given for a multi-sample file.
    """
    import cyvcf2

    path = Path(vcf)
    calls: dict[VariantKey, str] = {}
    try:
        reader = cyvcf2.VCF(str(path), lazy=True)
    except OSError as exc:
        raise ValidationError(f"cannot read VCF {path}: {exc}", file=path) from exc
    try:
        idx = _pick_sample(list(reader.samples), sample, path, strict=strict_sample)
        for v in _records(reader, path):
            if len(v.ALT) != 1 or not v.ALT[0] or v.ALT[0] in {"*", "<*>", "<NON_REF>"}:
                continue
            if pass_only and v.FILTER is not None:
                continue
            gt = v.genotypes[idx][:-1]  # allele indexes; the last item is the phase
            if 1 not in gt:
                continue
            key = (v.CHROM, int(v.POS), v.REF.upper(), v.ALT[0].upper())
            zygosity = "hom" if all(a == 1 for a in gt) else "het"
            calls.setdefault(key, zygosity)
    finally:
        reader.close()
    return calls


def _records(reader: Any, path: Path) -> Iterator[Any]:
    """Iterate over records, translating cyvcf2's parse errors."""
    try:
        yield from reader
    except Exception as exc:  # cyvcf2 raises a bare Exception on bad records
        raise ValidationError(f"cannot parse VCF {path}: {exc}", file=path) from exc


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _compare(
    truth: dict[VariantKey, str], query: dict[VariantKey, str]
) -> Iterator[CallSetComparison]:
    types = ["SNP", "INDEL"]
    if any(_variant_type(k[2], k[3]) == "OTHER" for k in (*truth, *query)):
        types.append("OTHER")
    for vtype in types:
        t = {k: z for k, z in truth.items() if _variant_type(k[2], k[3]) == vtype}
        q = {k: z for k, z in query.items() if _variant_type(k[2], k[3]) == vtype}
        shared = t.keys() & q.keys()
        tp, fp, fn = len(shared), len(q.keys() - t.keys()), len(t.keys() - q.keys())
        gt_match = sum(1 for k in shared if t[k] == q[k])
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        yield CallSetComparison(
            variant_type=vtype,
            truth_total=len(t),
            query_total=len(q),
            tp=tp,
            fp=fp,
            fn=fn,
            precision=precision,
            recall=recall,
            f1=f1,
            gt_match=gt_match,
            gt_mismatch=tp - gt_match,
            gt_concordance=_ratio(gt_match, tp),
        )


def compare_calls(
    truth: str | Path,
    query: str | Path,
    *,
    reference: str | Path,
    regions: str | Path | None = None,
    sample: str | None = None,
    pass_only: bool = True,
) -> list[CallSetComparison]:
    """Compare a query call set with a truth call set (see the module docstring).

    Parameters
    ----------
    truth
        Truth VCF (e.g. a GIAB benchmark set or the demo's simulated truth).
    query
        The calls to evaluate (e.g. ``results/vcf/cohort.vcf.gz``).
    reference
        Reference FASTA both were called against.
    regions
        Confident regions (BED); variants outside are ignored in both sets.
    sample
        Sample to evaluate in the query; in the truth too when it has that
        sample, otherwise the truth's only sample is used.
    pass_only
        Ignore query records with a FILTER other than PASS.

    Returns
    -------
    list[CallSetComparison]
        One row per variant type (SNP, INDEL, and OTHER when present).

    Raises
    ------
    NotFoundError
        If an input file does not exist.
    ConfigError
        If the regions BED is empty.
    ValidationError
        If the sample cannot be chosen.
    ExternalToolError
        If bcftools cannot normalise a file (e.g. REF does not match the reference).
    """
    truth_p = _require_file(truth, "truth VCF")
    query_p = _require_file(query, "query VCF")
    ref_p = _require_file(reference, "reference FASTA")
    regions_p = _require_file(regions, "regions BED") if regions is not None else None
    if regions_p is not None and regions_p.stat().st_size == 0:
        raise ConfigError(f"regions BED {regions_p} is empty: give the confident regions")
    with tempfile.TemporaryDirectory(prefix="compare-calls-") as tmp:
        t_norm = normalise_vcf(
            truth_p, Path(tmp) / "truth.vcf.gz", reference=ref_p, regions=regions_p
        )
        q_norm = normalise_vcf(
            query_p, Path(tmp) / "query.vcf.gz", reference=ref_p, regions=regions_p
        )
        query_calls = read_calls(q_norm, sample=sample, strict_sample=True, pass_only=pass_only)
        truth_calls = read_calls(t_norm, sample=sample, strict_sample=False, pass_only=False)
    logger.info("compared %d truth and %d query calls", len(truth_calls), len(query_calls))
    return list(_compare(truth_calls, query_calls))
