// Ultraplex splits one single-end pool by its 5' barcodes (UMI bases move to the read header). With the prefix
// `demux_<id>` its outputs are `<id>/ultraplex_demux_<id>_<barcode name>.fastq.gz`; the workflow turns each into a
// sample `<id>_<barcode name>`. Unmatched reads are dropped (--ignore_no_match) and counted in the log.
process ULTRAPLEX {
    tag "${meta.id}"
    label 'process_single'
    publishDir "${params.outdir}/ultraplex", mode: 'copy'

    input:
    tuple val(meta), path(reads, stageAs: 'input_?')
    path barcodes, stageAs: 'barcodes.csv'
    val min_quality

    output:
    tuple val(meta), path("${meta.id}/ultraplex_demux_${meta.id}_*.fastq.gz"), emit: reads
    path "${meta.id}/${meta.id}.ultraplex.log", emit: log

    script:
    """
    ln -sf input_1 'pool${meta.exts[0]}'
    ultraplex \\
        --inputfastq 'pool${meta.exts[0]}' \\
        --barcodes barcodes.csv \\
        --directory '${meta.id}' \\
        --outputprefix 'demux_${meta.id}' \\
        --phredquality ${min_quality as int} \\
        --threads ${task.cpus} \\
        --ignore_no_match \\
        --ignore_space_warning
    for log in '${meta.id}'/ultraplex_[0-9]*.log; do mv "\$log" '${meta.id}/${meta.id}.ultraplex.log'; done
    """
}
