#!/usr/bin/env bash
# The sequencing workflow's steps as one plain shell script, for the overhead
# benchmark (benchmarks/workflow_overhead.py): the same tools with the same
# options as workflow/rules/*.smk, run one after the other (tools that take
# threads get THREADS), with none of Snakemake's bookkeeping.
#
#   benchmarks/workflow_plain.sh DEMO_DIR OUT_DIR [THREADS] [CHUNKS]
#
# DEMO_DIR is a folder written by `biobank demo-data`; results go to OUT_DIR.
# Thresholds are config/config.yaml's defaults.
set -euo pipefail

demo=$(realpath "$1")
out=$2
threads=${3:-2}
chunks=${4:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
multiqc=${MULTIQC:-$here/.venv/bin/multiqc}

start=$(pwd)
mkdir -p "$out" && cd "$out"
mkdir -p ref chunks trimmed align qc/fastp qc/samtools qc/mosdepth qc/markdup calls joint vcf qc/bcftools qc/relatedness qc/multiqc
ref=ref/genome.fa

# 1. reference
cat "$demo/reference/genome.fa" > $ref
samtools faidx $ref
samtools dict --output ref/genome.dict $ref
bwa index $ref 2> /dev/null
beds=()
for ((i = 0; i < chunks; i++)); do beds+=("chunks/$(printf %04d "$i").bed"); done
"$python" -c "
import sys
from biobank.workflow import write_region_chunks
write_region_chunks(sys.argv[1], sys.argv[2:], min_gap=100)
" $ref "${beds[@]}"
"$python" -c "
from biobank.workflow import reference_contigs, write_ploidy_file
write_ploidy_file('ref/ploidy.txt', contigs=reference_contigs('$ref'), chrx='chrX', chry='chrY', par=[])
"

# 2-3. per unit: trim, align, fix mates, sort
declare -A units_of
while IFS=$'\t' read -r sample unit library platform flowcell lane fq1 fq2; do
    [ "$sample" = sample_id ] && continue
    case $fq1 in /*) ;; *) fq1=$start/$fq1 fq2=$start/$fq2 ;; esac
    fastp --in1 "$fq1" --in2 "$fq2" \
        --out1 "trimmed/${sample}_${unit}_R1.fastq.gz" --out2 "trimmed/${sample}_${unit}_R2.fastq.gz" \
        --json "qc/fastp/$sample.$unit.fastp.json" --html "qc/fastp/$sample.$unit.fastp.html" \
        --length_required 36 --n_base_limit 5 --detect_adapter_for_pe --thread "$threads" 2> /dev/null
    rg="@RG\tID:$sample.$unit\tSM:$sample\tLB:$library\tPL:$platform\tPU:$flowcell.$lane.$sample"
    bwa mem -t "$threads" -R "$rg" $ref "trimmed/${sample}_${unit}_R1.fastq.gz" "trimmed/${sample}_${unit}_R2.fastq.gz" 2> /dev/null \
        | samtools fixmate -m -u - - \
        | samtools sort -T "align/$sample.$unit.sort" -m 500M -o "align/$sample.$unit.bam" - 2> /dev/null
    rm "trimmed/${sample}_${unit}_R1.fastq.gz" "trimmed/${sample}_${unit}_R2.fastq.gz"
    units_of[$sample]="${units_of[$sample]:-} align/$sample.$unit.bam"
done < "$demo/samples.tsv"
samples=$(cut -f1 "$demo/samples.tsv" | tail -n +2 | awk '!seen[$0]++')

# 3-5. per sample: merge + mark duplicates, QC, sex, gVCF over the chunks
for sample in $samples; do
    # shellcheck disable=SC2086
    samtools merge -u -o - ${units_of[$sample]} \
        | samtools markdup -T "align/$sample.markdup" -f "qc/markdup/$sample.markdup.txt" --reference $ref \
            -O BAM --write-index -@ "$threads" - "align/$sample.bam##idx##align/$sample.bam.bai" 2> /dev/null
    # shellcheck disable=SC2086
    rm ${units_of[$sample]}
    samtools stats --reference $ref "align/$sample.bam" > "qc/samtools/$sample.stats.txt"
    samtools flagstat "align/$sample.bam" > "qc/samtools/$sample.flagstat.txt"
    bash "$here/workflow/scripts/mosdepth.sh" --no-per-base --fast-mode --fasta $ref --threads 1 \
        "qc/mosdepth/$sample" "align/$sample.bam"
    "$python" -c "
from biobank.sampleqc import infer_sex, read_mosdepth_summary
import csv
reg = {r['sample_id']: r['sex'] for r in csv.DictReader(open('$demo/truth/ancestry.tsv'), delimiter='\t')}
call = infer_sex(read_mosdepth_summary('qc/mosdepth/$sample.mosdepth.summary.txt'), chrx='chrX', chry='chrY', x_ratio_male=0.75, y_ratio_male=0.1)
sex = reg.get('$sample') or call.inferred
open('calls/$sample.sex.tsv', 'w').write('$sample\t' + {'male': 'M', 'female': 'F'}.get(sex or '', 'U') + '\n')
"
    parts=()
    for bed in "${beds[@]}"; do
        part="calls/$sample.$(basename "$bed" .bed).g.bcf"
        bcftools mpileup --fasta-ref $ref --regions-file "$bed" --annotate FORMAT/AD,FORMAT/DP \
            --min-MQ 20 --min-BQ 13 --max-depth 500 --output-type u "align/$sample.bam" 2> /dev/null \
            | bcftools call --multiallelic-caller --gvcf 5,10,20 --annotate FORMAT/GQ \
                --ploidy-file ref/ploidy.txt --samples-file "calls/$sample.sex.tsv" \
                --output-type b --output "$part" 2> /dev/null
        parts+=("$part")
    done
    bcftools concat --output-type z --output "calls/$sample.g.vcf.gz" "${parts[@]}" 2> /dev/null
    tabix -p vcf "calls/$sample.g.vcf.gz"
    rm "${parts[@]}"
done

# 5. joint genotyping per chunk, gather, normalise, soft filters
gvcfs=()
for sample in $samples; do gvcfs+=("calls/$sample.g.vcf.gz"); done
jparts=()
for bed in "${beds[@]}"; do
    part="joint/$(basename "$bed" .bed).bcf"
    bcftools merge --gvcf $ref --regions-file "$bed" --output-type u "${gvcfs[@]}" \
        | bcftools view --targets-file "$bed" --min-ac 1 --output-type b --output "$part"
    jparts+=("$part")
done
bcftools concat --output-type u "${jparts[@]}" 2> /dev/null \
    | bcftools norm --multiallelics -any --fasta-ref $ref --output-type u 2> /dev/null \
    | bcftools +fill-tags --output-type b --output joint/cohort.norm.bcf -- --tags AC,AN,AF,NS,F_MISSING
"$python" -c "
from biobank.workflow import apply_soft_filters
apply_soft_filters('joint/cohort.norm.bcf', 'joint/cohort.filtered.bcf', thresholds=dict(
    min_qual=20, min_site_dp=5, max_site_dp=100000, min_mq=30, min_gq=20, min_dp=5))
"

# 6. consequences
bcftools csq --fasta-ref $ref --gff-annot "$demo/reference/genes.gff3" --phase a \
    --output-type z --output vcf/cohort.vcf.gz joint/cohort.filtered.bcf 2> /dev/null
tabix -p vcf vcf/cohort.vcf.gz

# 7. sample QC
bcftools stats --fasta-ref $ref --samples - vcf/cohort.vcf.gz > qc/bcftools/cohort.stats.txt
"$python" -c "
import csv
from biobank.sampleqc import count_genotypes, infer_sex, king_table, read_mosdepth_summary, sample_qc_table, write_sample_qc
samples = '''$samples'''.split()
reg = {r['sample_id']: r['sex'] for r in csv.DictReader(open('$demo/truth/ancestry.tsv'), delimiter='\t')}
sex = {s: infer_sex(read_mosdepth_summary(f'qc/mosdepth/{s}.mosdepth.summary.txt'), chrx='chrX', chry='chrY', x_ratio_male=0.75, y_ratio_male=0.1) for s in samples}
rows = sample_qc_table(count_genotypes('vcf/cohort.vcf.gz', exclude_contigs=['chrX', 'chrY']), sex_calls=sex,
    registered_sex={s: reg.get(s) for s in samples}, kinship=king_table('vcf/cohort.vcf.gz', 'qc/relatedness/cohort'),
    thresholds=dict(min_call_rate=0.95, max_het_sd=3.0, min_tstv=None, max_tstv=None, max_kinship=0.177))
write_sample_qc(rows, 'qc/sample_qc.tsv', multiqc='qc/multiqc/sample_qc_mqc.tsv')
"

# 8. report
"$multiqc" --force --no-data-dir --title 'Sequencing run QC' --filename multiqc_report.html --outdir qc \
    qc/fastp/*.json qc/samtools qc/mosdepth qc/bcftools/cohort.stats.txt qc/multiqc/sample_qc_mqc.tsv 2> /dev/null
echo "plain run finished: $out/vcf/cohort.vcf.gz"
