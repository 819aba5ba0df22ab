// A tiny DSL2 pipeline for toolchain tests: one task per name greets it, a last task joins the greetings.
nextflow.enable.dsl = 2

params.names = 'names.txt'
params.greeting = 'Hello'
params.outdir = 'results'

process GREET {
    tag "${name}"
    publishDir "${params.outdir}/greetings", mode: 'copy'

    input:
    val name

    output:
    path "${name}.txt"

    script:
    """
    printf '%s, %s!\\n' "${params.greeting}" "${name}" > "${name}.txt"
    """
}

process JOIN {
    publishDir "${params.outdir}", mode: 'copy'

    input:
    path greetings

    output:
    path 'all.txt'

    script:
    """
    cat ${greetings} | sort > all.txt
    """
}

workflow {
    names = Channel.fromPath(params.names).splitText().map { it.trim() }.filter { it }
    JOIN(GREET(names).collect())
}
