"""The demo center: every file of ``biobank demo-data OUT``, deterministic for a seed.

See ``docs/ARCHITECTURE.md`` ("Demo center folder") for the layout and
``reference/README.md`` for what is simulated and how.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biobank.core.errors import ConflictError, ValidationError
from biobank.testing import clinical as clin
from biobank.testing import people as ppl
from biobank.testing.genome import Genome, GenomeSpec, build_genome, write_fasta, write_gff3
from biobank.testing.planting import PlantedVariant, plant_variant
from biobank.testing.population import (
    DEMOGRAPHY,
    MUTATION_RATE,
    RECOMBINATION_RATE,
    Population,
    Variants,
    simulate_population,
    write_vcf,
)
from biobank.testing.reads import ReadUnit, simulate_reads

__all__ = ["OUTPUTS", "PRESETS", "Manifest", "Preset", "generate_demo"]

logger = logging.getLogger(__name__)

GENES = (
    ("GCK", "chr1", "-", 10),
    ("HNF1A", "chr1", "+", 9),
    ("LDLR", "chr1", "+", 12),
    ("PCSK9", "chr1", "+", 8),
    ("TP53", "chr1", "-", 10),
    ("HBB", "chr1", "-", 3),
    ("APOE", "chr1", "+", 4),
    ("GAPDH", "chr1", "+", 9),
    ("ACTB", "chr1", "-", 6),
    ("BRCA1", "chr2", "-", 12),
    ("BRCA2", "chr2", "+", 12),
    ("ATP7B", "chr2", "-", 10),
    ("CFTR", "chr2", "+", 12),
    ("MYH7", "chr2", "-", 10),
    ("ALB", "chr2", "+", 8),
    ("INS", "chr2", "-", 3),
    ("G6PD", "chrX", "-", 10),
    ("F8", "chrX", "-", 10),
    ("DMD", "chrX", "-", 12),
    ("OTC", "chrX", "+", 10),
    ("SRY", "chrY", "-", 1),
)


@dataclass(frozen=True)
class Preset:
    """Sizes of a generated demo center."""

    name: str
    genome: GenomeSpec
    n_founders: int
    n_families: int
    n_sequenced: int
    depth: float
    #: Planted effects: T2D odds ratio per GCK allele, BC death hazard ratio per BRCA2 allele.
    t2d_odds_ratio: float = clin.T2D_OR
    brca2_hazard_ratio: float = clin.BRCA2_HR
    ancestry_shares: dict[str, float] = field(
        default_factory=lambda: {"Han-North": 0.45, "Han-South": 0.4, "Tibetan": 0.15}
    )


PRESETS: dict[str, Preset] = {
    "demo": Preset(
        name="demo",
        genome=GenomeSpec(
            contig_lengths={"chr1": 1_100_000, "chr2": 850_000, "chrX": 500_000, "chrY": 80_000},
            genes=GENES,
        ),
        n_founders=955,
        n_families=30,
        n_sequenced=6,
        depth=20.0,
    ),
    "tiny": Preset(
        name="tiny",
        genome=GenomeSpec(
            contig_lengths={"chr1": 170_000, "chr2": 130_000, "chrX": 80_000, "chrY": 20_000},
            genes=GENES,
            intron_range=(120, 400),
            codons_range=(120, 260),
            gap_range=(200, 600),
            repeat_fraction=0.2,
        ),
        n_founders=190,
        n_families=6,
        n_sequenced=2,
        depth=20.0,  # the demo preset's coverage, so accuracy tests see it
        # a stronger effect, so that the small tiny cohort still shows it clearly
        t2d_odds_ratio=5.0,
    ),
}

#: Top-level entries written under OUT (removed first with ``force=True``).
OUTPUTS = (
    "reference",
    "population",
    "truth",
    "fastq",
    "registry",
    "clinical",
    "samples.tsv",
    "manifest.json",
)

#: The planted variants: gene, consequence, allele-frequency range, trait, effect.
PLANTED = (
    ("GCK", "missense_variant", (0.08, 0.15), "T2D", "odds_ratio_per_allele", "t2d_odds_ratio"),
    (
        "BRCA2",
        "missense_variant",
        (0.08, 0.2),
        "BC survival",
        "hazard_ratio_per_allele",
        "brca2_hazard_ratio",
    ),
    ("BRCA1", "frameshift_variant", (0.005, 0.02), "BC", "odds_ratio_per_allele", clin.BRCA1_OR),
    ("LDLR", "stop_gained", (0.008, 0.03), "FH", "dominant_penetrance", 0.85),
    ("ATP7B", "splice_donor_variant", (0.03, 0.08), "WD", "recessive_penetrance", 1.0),
)


@dataclass
class Manifest:
    """What was generated: seed, preset, parameters, counts and file checksums."""

    out: Path
    seed: int
    preset: str
    parameters: dict[str, Any]
    counts: dict[str, int]
    files: dict[str, str]

    def to_json(self) -> str:
        """Return the manifest as JSON (without the output path: it is not content)."""
        data = asdict(self)
        data.pop("out")
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> Manifest:
        """Read ``OUT/manifest.json``."""
        data = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
        return cls(out=Path(out), **data)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConflictError(f"{out} exists and is not a folder: choose another OUT")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConflictError(
                f"{out} is not empty: choose an empty or new folder, or pass --force to "
                "replace the demo files in it"
            )
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check_options(preset: str, registry_encoding: str, seed: int) -> Preset:
    """Return the preset, or raise for an unknown preset, encoding or a bad seed."""
    if preset not in PRESETS:
        raise ValidationError(
            f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}", field="preset"
        )
    if registry_encoding.lower() not in ("utf-8", "utf8", "gb18030"):
        raise ValidationError(
            f"registry_encoding {registry_encoding!r} is not supported: use utf-8 or gb18030",
            field="registry_encoding",
        )
    if seed <= 0:
        raise ValidationError("the seed must be a positive integer", field="seed", value=str(seed))
    return PRESETS[preset]


def _write_reference(genome: Genome, ref_dir: Path) -> None:
    """``genome.fa`` (with ``.fai``) and ``genes.gff3``."""
    import pysam

    ref_dir.mkdir()
    write_fasta(genome, ref_dir / "genome.fa")
    pysam.faidx(str(ref_dir / "genome.fa"))
    write_gff3(genome, ref_dir / "genes.gff3")


def _plant_all(
    pop: Population, genome: Genome, rng: np.random.Generator, in_vcf: np.ndarray
) -> list[PlantedVariant]:
    """Plant the :data:`PLANTED` variants, each at its own site."""
    planted: list[PlantedVariant] = []
    taken: set[tuple[str, int]] = set()
    for gene, consequence, af_range, *_ in PLANTED:
        pv = plant_variant(
            pop,
            genome,
            gene=gene,
            consequence=consequence,
            af_range=af_range,
            rng=rng,
            individuals=in_vcf,
            exclude=taken,
        )
        taken.add((pv.contig, pv.pos))
        planted.append(pv)
    return planted


def _write_people(
    rng: np.random.Generator,
    out_path: Path,
    pop: Population,
    planted: list[PlantedVariant],
    sample_ids: list[str],
    spec: Preset,
    *,
    registry_encoding: str,
) -> tuple[clin.Clinical, dict[str, list[dict[str, str]]]]:
    """Simulate participants and their clinical histories (driven by the planted variants);
    write the registry and clinical CSVs; return the clinical tables and registry rows."""
    v = pop.variants
    site_of = {(str(c), int(p)): i for i, (c, p) in enumerate(zip(v.contig, v.pos, strict=True))}
    dosages = {pv.gene: v.dosage(site_of[(pv.contig, pv.pos)]) for pv in planted}
    people = ppl.make_people(
        rng, sexes=pop.sex, ancestries=pop.ancestry, parents=pop.parents, sample_ids=sample_ids
    )
    tables = clin.simulate_clinical(
        rng, people, dosages, t2d_or=spec.t2d_odds_ratio, brca2_hr=spec.brca2_hazard_ratio
    )
    registry = ppl.registry_rows(rng, people)
    ppl.write_registry(out_path / "registry", registry, encoding=registry_encoding)
    clin.write_clinical(out_path / "clinical", tables)
    return tables, registry


def _write_vcfs(
    out_path: Path,
    genome: Genome,
    v: Variants,
    in_vcf: np.ndarray,
    sequenced: list[int],
    sample_ids: list[str],
) -> Path:
    """The cohort VCF and one truth VCF per sequenced sample; return the truth folder."""
    (out_path / "population").mkdir()
    truth = out_path / "truth"
    truth.mkdir()
    write_vcf(
        out_path / "population" / "cohort.vcf.gz",
        genome,
        v,
        in_vcf,
        [sample_ids[i] for i in in_vcf],
        source="biobank.testing (msprime)",
    )
    for i in sequenced:
        write_vcf(
            truth / f"{sample_ids[i]}.vcf.gz",
            genome,
            v,
            np.array([i]),
            [sample_ids[i]],
            only_carried=True,
            source="biobank.testing truth",
        )
    return truth


def _write_reads(
    out: str | os.PathLike[str],
    out_path: Path,
    genome: Genome,
    pop: Population,
    sequenced: list[int],
    sample_ids: list[str],
    *,
    depth: float,
    seed: int,
) -> list[ReadUnit]:
    """Simulate the FASTQ files of the sequenced samples and write ``samples.tsv``."""
    with tempfile.TemporaryDirectory(prefix="demo-reads") as tmp:
        units = simulate_reads(
            genome,
            pop.variants,
            [(i, sample_ids[i], pop.sex[i]) for i in sequenced],
            out_dir=out_path / "fastq",
            sheet_dir=os.path.join(str(out), "fastq"),
            work_dir=Path(tmp),
            depth=depth,
            seed=seed,
        )
    sheet = ["sample_id\tunit\tlibrary\tplatform\tflowcell\tlane\tfq1\tfq2"]
    sheet += [
        f"{u.sample_id}\t{u.unit}\t{u.library}\t{u.platform}\t{u.flowcell}\t{u.lane}\t"
        f"{u.fq1}\t{u.fq2}"
        for u in units
    ]
    (out_path / "samples.tsv").write_text("\n".join(sheet) + "\n", encoding="utf-8")
    return units


def _checksums(out_path: Path) -> dict[str, str]:
    """SHA-256 of every generated file but the manifest, by relative path."""
    return {
        str(p.relative_to(out_path)): _sha256(p)
        for p in sorted(out_path.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and p.relative_to(out_path).parts[0] in OUTPUTS
    }


def _parameters(
    spec: Preset, *, reads: bool, registry_encoding: str, sequenced_ids: list[str]
) -> dict[str, Any]:
    """The manifest's ``parameters``."""
    return {
        "contig_lengths": spec.genome.contig_lengths,
        "genes": [g[0] for g in spec.genome.genes],
        "n_founders": spec.n_founders,
        "n_families": spec.n_families,
        "depth": spec.depth if reads else 0,
        "reference_date": ppl.REFERENCE_DATE.isoformat(),
        "registry_encoding": registry_encoding,
        "demography": dict(DEMOGRAPHY),
        "mutation_rate": MUTATION_RATE,
        "recombination_rate": RECOMBINATION_RATE,
        "t2d_odds_ratio": spec.t2d_odds_ratio,
        "brca2_hazard_ratio": spec.brca2_hazard_ratio,
        "sequenced_samples": sequenced_ids,
    }


def generate_demo(
    out: str | os.PathLike[str],
    *,
    seed: int = 42,
    preset: str = "demo",
    force: bool = False,
    reads: bool = True,
    registry_encoding: str = "utf-8",
    on_step: Callable[[str], None] | None = None,
) -> Manifest:
    """Generate a demo center folder (reference, population, reads, registry, clinical).

    Parameters
    ----------
    out
        Output folder; created if missing. Paths in ``samples.tsv`` are
        ``<out as given>/fastq/...``, so a relative ``out`` gives paths
        relative to the current directory.
    seed
        Random seed (a positive integer); the same seed and preset give
        byte-identical files.
    preset
        ``"demo"`` (about 1,000 participants, 2.5 Mb, 6 sequenced at 20x) or
        ``"tiny"`` (about 200 participants, 0.4 Mb, 2 sequenced at 15x).
    force
        Replace the generated entries (:data:`OUTPUTS`) of a non-empty ``out``.
    reads
        Simulate FASTQ reads and write ``samples.tsv`` (the slowest step). Without
        reads every other file is the same as with them.
    registry_encoding
        Encoding of the registry CSVs: ``"utf-8"`` or ``"gb18030"`` (as some
        hospital systems export). The clinical CSVs are always UTF-8.
    on_step
        Called with a short description at the start of each step (progress).

    Returns
    -------
    Manifest
        Also written to ``OUT/manifest.json``.

    Raises
    ------
    ValidationError
        If ``preset`` is unknown or ``seed`` is not positive.
    ConflictError
        If ``out`` is not empty and ``force`` is false.
    """
    spec = _check_options(preset, registry_encoding, seed)
    out_path = Path(out)
    _prepare(out_path, force)
    started = time.perf_counter()

    def step(text: str) -> None:
        logger.info("[%5.1fs] %s", time.perf_counter() - started, text)
        if on_step is not None:
            on_step(text)

    rng = np.random.default_rng([seed, 1])
    step("building the reference genome and genes")
    genome = build_genome(spec.genome, rng)
    _write_reference(genome, out_path / "reference")
    step("simulating the population with msprime")
    pop = simulate_population(
        genome,
        n_founders=spec.n_founders,
        n_families=spec.n_families,
        ancestry_shares=spec.ancestry_shares,
        seed=seed,
    )
    n = len(pop.sex)
    sequenced = _choose_sequenced(rng, pop.sex, pop.parents, spec.n_sequenced)
    in_vcf = np.array([i for i in range(n) if i not in set(sequenced)], dtype=np.int64)
    width = max(4, len(str(n)))
    sample_ids = [f"S{i + 1:0{width}d}" for i in range(n)]
    step("planting causal variants")
    planted = _plant_all(pop, genome, rng, in_vcf)
    v = pop.variants
    step("simulating participants, clinical histories and specimens")
    tables, registry = _write_people(
        rng, out_path, pop, planted, sample_ids, spec, registry_encoding=registry_encoding
    )
    step("writing the cohort VCF and truth files")
    truth = _write_vcfs(out_path, genome, v, in_vcf, sequenced, sample_ids)
    _write_truth_tables(truth, planted, v, in_vcf, pop, sample_ids, spec)
    units: list[ReadUnit] = []
    if reads:
        step(f"simulating reads for {len(sequenced)} samples with wgsim")
        units = _write_reads(
            out, out_path, genome, pop, sequenced, sample_ids, depth=spec.depth, seed=seed
        )
    step("writing the manifest")
    manifest = Manifest(
        out=out_path,
        seed=seed,
        preset=preset,
        parameters=_parameters(
            spec,
            reads=reads,
            registry_encoding=registry_encoding,
            sequenced_ids=[sample_ids[i] for i in sequenced],
        ),
        counts={
            "participants": n,
            "cohort_vcf_samples": len(in_vcf),
            "variant_sites": len(v),
            "genes": len(genome.genes),
            "sequenced_samples": len(sequenced),
            "fastq_units": len(units),
            "specimens": len(registry["specimens"]),
            "consents": len(registry["consents"]),
            "conditions": len(tables.condition_occurrence),
            "measurements": len(tables.measurement),
            "deaths": len(tables.death),
        },
        files=_checksums(out_path),
    )
    (out_path / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    step(f"done in {time.perf_counter() - started:.1f} s")
    return manifest


def _choose_sequenced(
    rng: np.random.Generator, sex: list[str], parents: list[tuple[int, int] | None], k: int
) -> list[int]:
    """Pick the "new batch": both sexes, and a child whose parents stay in the cohort."""
    founders = [i for i, p in enumerate(parents) if p is None]
    in_family = {x for p in parents if p is not None for x in p}
    free = [i for i in founders if i not in in_family]
    men = [i for i in free if sex[i] == "male"]
    women = [i for i in free if sex[i] == "female"]
    children = [i for i, p in enumerate(parents) if p is not None]
    chosen = [int(x) for x in rng.choice(men, size=(k + 1) // 2, replace=False)]
    chosen += [int(x) for x in rng.choice(women, size=k // 2, replace=False)]
    same_sex = [c for c in children if sex[c] == sex[chosen[-1]]]
    if same_sex and k >= 2:  # keep both sexes in the batch
        chosen[-1] = int(same_sex[int(rng.integers(0, len(same_sex)))])
    return sorted(chosen)


def _write_truth_tables(
    truth: Path,
    planted: list[PlantedVariant],
    v: Any,
    in_vcf: np.ndarray,
    pop: Any,
    sample_ids: list[str],
    spec: Preset,
) -> None:
    site_of = {(str(c), int(p)): i for i, (c, p) in enumerate(zip(v.contig, v.pos, strict=True))}
    ac, an = v.allele_counts(in_vcf)
    rows = ["contig\tpos\tref\talt\tgene\tconsequence\ttrait\teffect_type\teffect_size\tcohort_af"]
    for pv, (_, _, _, trait, effect, size) in zip(planted, PLANTED, strict=True):
        if isinstance(size, str):
            size = getattr(spec, size)
        s = site_of[(pv.contig, pv.pos)]
        rows.append(
            f"{pv.contig}\t{pv.pos + 1}\t{pv.ref}\t{pv.alt}\t{pv.gene}\t{pv.consequence}\t"
            f"{trait}\t{effect}\t{size}\t{ac[s] / an[s]:.4f}"
        )
    (truth / "causal_variants.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    anc = ["sample_id\tancestry\tsex"]
    anc += [f"{sample_ids[i]}\t{a}\t{pop.sex[i]}" for i, a in enumerate(pop.ancestry)]
    (truth / "ancestry.tsv").write_text("\n".join(anc) + "\n", encoding="utf-8")
    rel = ["sample_id_1\tsample_id_2\trelationship"]
    kids: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pop.parents):
        if p is None:
            continue
        kids.setdefault(p, []).append(i)
        rel += [f"{sample_ids[p[0]]}\t{sample_ids[i]}\tparent-offspring"]
        rel += [f"{sample_ids[p[1]]}\t{sample_ids[i]}\tparent-offspring"]
    for sibs in kids.values():
        if len(sibs) == 2:
            rel.append(f"{sample_ids[sibs[0]]}\t{sample_ids[sibs[1]]}\tfull-siblings")
    (truth / "relatives.tsv").write_text("\n".join(rel) + "\n", encoding="utf-8")
