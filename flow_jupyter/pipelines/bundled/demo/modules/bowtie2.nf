// Bowtie2: the index is built once from the reference (plain or gzipped FASTA, staged under a fixed name), then
// every sample is aligned and piped straight into `samtools sort`; bowtie2's summary (stderr) is the log MultiQC reads.
process BOWTIE2_BUILD {
    tag 'reference'
    label 'process_single'
    publishDir "${params.outdir}/bowtie2", mode: 'copy'

    input:
    path fasta, stageAs: 'reference_input'

    output:
    path 'index', emit: index

    script:
    """
    gzip -cdf reference_input > genome.fa
    mkdir -p index
    bowtie2-build --threads ${task.cpus} genome.fa index/genome > index/bowtie2-build.log
    """
}

process BOWTIE2_ALIGN {
    tag "${meta.id}"
    label 'process_low'
    publishDir "${params.outdir}/bowtie2", mode: 'copy'

    input:
    tuple val(meta), path(reads, stageAs: 'input_?')
    path index

    output:
    tuple val(meta), path("${meta.id}.bam"), path("${meta.id}.bam.bai"), emit: bam
    tuple val(meta), path("${meta.id}.bowtie2.log"), emit: log

    script:
    // bowtie2 reads plain or gzipped FASTQ whatever the file is called, so the fixed staged names are enough.
    def inputs = meta.single_end ? '-U input_1' : '-1 input_1 -2 input_2'
    """
    bowtie2 \\
        --threads ${task.cpus} \\
        -x '${index}/genome' \\
        ${inputs} \\
        --rg-id '${meta.id}' --rg 'SM:${meta.id}' \\
        2> '${meta.id}.bowtie2.log' \\
        | samtools sort -@ ${task.cpus} -o '${meta.id}.bam' -
    samtools index '${meta.id}.bam'
    """
}
