// MultiQC over every QC file of the run. The report title is user text: it arrives base64-encoded (letters,
// digits, + / =, checked below), is decoded in the task and reaches MultiQC as a quoted shell variable.
process MULTIQC {
    label 'process_single'
    publishDir "${params.outdir}/multiqc", mode: 'copy'

    input:
    path qc_files, stageAs: 'inputs/*'
    val title_base64

    output:
    path 'multiqc_report.html', emit: report
    path 'multiqc_data', emit: data

    script:
    if (!(title_base64 ==~ /[A-Za-z0-9+\/=]*/)) {
        error("MULTIQC: the title must arrive base64-encoded")
    }
    """
    title="\$(printf '%s' '${title_base64}' | base64 -d)"
    title_args=()
    if [ -n "\$title" ]; then title_args=(--title "\$title"); fi
    multiqc --force --no-version-check --filename multiqc_report.html "\${title_args[@]}" inputs
    # A fixed --filename (a title would otherwise name the report) makes MultiQC call its data folder after it.
    mv multiqc_report_data multiqc_data
    """
}
