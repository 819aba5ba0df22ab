// Alignment statistics in the text form MultiQC's samtools module parses.
process SAMTOOLS_FLAGSTAT {
    tag "${meta.id}"
    label 'process_single'
    publishDir "${params.outdir}/samtools", mode: 'copy'

    input:
    tuple val(meta), path(bam), path(bai)

    output:
    tuple val(meta), path("${meta.id}.flagstat"), emit: flagstat

    script:
    """
    samtools flagstat --threads ${task.cpus} '${bam}' > '${meta.id}.flagstat'
    """
}
