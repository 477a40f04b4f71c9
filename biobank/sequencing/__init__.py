"""Stage 2, sequencing: the workflow's inputs and checks, region chunks and
soft filters, the sample sheet the registry writes for the workflow, sample
QC and call-set accuracy.
"""

from __future__ import annotations

from biobank.sequencing.accuracy import CallSetComparison, compare_calls, normalise_vcf, read_calls
from biobank.sequencing.checks import (
    REQUIRED_TOOLS,
    check_config,
    check_inputs,
    check_reference,
    check_tools,
)
from biobank.sequencing.launcher import repo_workflow_dir, run_workflow
from biobank.sequencing.regions import (
    plan_region_chunks,
    reference_contigs,
    write_ploidy_file,
    write_region_chunks,
)
from biobank.sequencing.sampleqc import (
    STORED_COLUMNS,
    GenotypeCounts,
    SampleQcLoad,
    SexCall,
    count_genotypes,
    infer_sex,
    king_table,
    load_sample_qc,
    read_mosdepth_summary,
    sample_qc_table,
    write_sample_qc,
)
from biobank.sequencing.sampleqc_family import merge_family_checks, read_sample_qc
from biobank.sequencing.sheet import (
    SHEET_COLUMNS,
    SampleSheetExport,
    find_fastqs,
    sample_sheet,
    write_sample_sheet,
)
from biobank.sequencing.units import SampleSheet, Unit, check_fastq_pair, read_sample_sheet

__all__ = [
    "REQUIRED_TOOLS",
    "SHEET_COLUMNS",
    "STORED_COLUMNS",
    "CallSetComparison",
    "GenotypeCounts",
    "SampleQcLoad",
    "SampleSheet",
    "SampleSheetExport",
    "SexCall",
    "Unit",
    "check_config",
    "check_fastq_pair",
    "check_inputs",
    "check_reference",
    "check_tools",
    "compare_calls",
    "count_genotypes",
    "find_fastqs",
    "infer_sex",
    "king_table",
    "load_sample_qc",
    "merge_family_checks",
    "normalise_vcf",
    "plan_region_chunks",
    "read_calls",
    "read_mosdepth_summary",
    "read_sample_qc",
    "read_sample_sheet",
    "reference_contigs",
    "repo_workflow_dir",
    "run_workflow",
    "sample_qc_table",
    "sample_sheet",
    "write_ploidy_file",
    "write_region_chunks",
    "write_sample_qc",
    "write_sample_sheet",
]
