// FastQC on one sample's reads. The staged inputs get fixed names (input_1, input_2) and are linked to names built
// only from the validated sample id, so no user-chosen file name ever reaches the shell.
process FASTQC {
    tag "${meta.id}"
    label 'process_single'
    publishDir "${params.outdir}/fastqc", mode: 'copy'

    input:
    tuple val(meta), path(reads, stageAs: 'input_?')

    output:
    tuple val(meta), path('*_fastqc.zip'), emit: zip
    tuple val(meta), path('*_fastqc.html'), emit: html

    script:
    def names = meta.single_end
        ? ["${meta.id}${meta.exts[0]}"]
        : ["${meta.id}_1${meta.exts[0]}", "${meta.id}_2${meta.exts[1]}"]
    def links = names.withIndex().collect { name, i -> "ln -sf input_${i + 1} '${name}'" }.join('\n')
    """
    ${links}
    fastqc --quiet --threads ${task.cpus} ${names.collect { "'${it}'" }.join(' ')}
    """
}
