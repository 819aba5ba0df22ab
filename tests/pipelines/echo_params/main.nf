// Writes its parameters back out as JSON from Groovy (an `exec:` task, no shell), so tests can compare what a
// user typed with what the pipeline received.
nextflow.enable.dsl = 2

params.outdir = 'results'
params.greeting = ''
params.note = ''
params.nested = [:]

process ECHO {
    publishDir "${params.outdir}", mode: 'copy'

    output:
    path 'echo.json'

    exec:
    task.workDir.resolve('echo.json').text = groovy.json.JsonOutput.toJson(
        [greeting: params.greeting, note: params.note, nested: params.nested])
}

workflow {
    ECHO()
}
