#!/usr/bin/env nextflow
/*
 * flow_jupyter demo: read QC, optional barcode demultiplexing, alignment and a MultiQC report.
 *
 *   sample sheet ─▶ [ULTRAPLEX when --barcodes] ─▶ FASTQC ─┐
 *                                                └▶ BOWTIE2_ALIGN (index from BOWTIE2_BUILD) ─▶ SAMTOOLS_FLAGSTAT
 *                                                                              all QC files ─▶ MULTIQC
 *
 * Flow validates the parameters against nextflow_schema.json before launching (no plugins are needed offline);
 * the checks below are a light second line that fails early with a clear message when run by hand.
 * Sample names end up in file names and task scripts, so they are held to ^[A-Za-z0-9_.-]+$; user-chosen file
 * names never reach a script (inputs are staged under fixed names).
 */
nextflow.enable.dsl = 2

include { ULTRAPLEX                   } from './modules/ultraplex'
include { FASTQC                      } from './modules/fastqc'
include { BOWTIE2_BUILD; BOWTIE2_ALIGN } from './modules/bowtie2'
include { SAMTOOLS_FLAGSTAT           } from './modules/samtools'
include { MULTIQC                     } from './modules/multiqc'

// Patterns shared with assets/schema_input.json (functions cannot see script variables, hence functions).
def safeName() { ~/^[A-Za-z0-9_.-]+$/ }
def fastqName() { ~/^\S+\.f(ast)?q(\.gz)?$/ }
def barcodeLine() { ~/^([ACGTNacgtn]+):([A-Za-z0-9_.-]+)$/ }

def usage() {
    return '''
    Usage: nextflow run <this directory> -params-file params.json   (or --input sheet.csv --fasta ref.fa ...)

      --input          sample sheet CSV: sample,fastq_1,fastq_2 (fastq_2 empty for single-end)
      --fasta          reference FASTA (plain or .gz)
      --barcodes       optional Ultraplex barcode file, one `<5' barcode>:<name>` per line (single-end pools)
      --min_quality    Ultraplex 3' quality trimming threshold (default 30)
      --outdir         results directory (default: results)
      --skip_fastqc    skip FastQC
      --multiqc_title  title of the MultiQC report
    '''.stripIndent()
}

def fail(String message) {
    error("Invalid parameters: ${message}")
}

def fastqExtension(String sample, String column, String name) {
    if (!(name ==~ fastqName())) {
        fail("sample '${sample}': ${column} must end in .fastq, .fq, .fastq.gz or .fq.gz (got '${name}')")
    }
    return name.endsWith('.gz') ? '.fastq.gz' : '.fastq'
}

def inputFile(String sample, String column, String value) {
    def reads = file(value)
    if (!reads.exists()) {
        fail("sample '${sample}': ${column} file does not exist: ${value}")
    }
    return reads
}

/* Reads and checks the sample sheet; returns [meta, [reads]] per row. meta: id, single_end, exts (per reads file). */
def readSamplesheet(String path) {
    def sheet = file(path)
    if (!sheet.exists()) {
        fail("--input sample sheet does not exist: ${path}")
    }
    def rows = sheet.splitCsv(header: true, strip: true)
    if (!rows) {
        fail("the sample sheet ${path} has no rows")
    }
    def missing = ['sample', 'fastq_1'] - rows[0].keySet()
    if (missing) {
        fail("the sample sheet must have the columns sample,fastq_1[,fastq_2]; missing: ${missing.join(', ')}")
    }
    def seen = [] as Set
    return rows.withIndex().collect { row, index ->
        def sample = (row.sample ?: '').toString()
        if (!(sample ==~ safeName())) {
            fail("row ${index + 2}: sample name '${sample}' must match ${safeName()} (letters, digits, _ . -)")
        }
        if (!seen.add(sample)) {
            fail("sample '${sample}' appears more than once in the sample sheet")
        }
        if (!row.fastq_1) {
            fail("sample '${sample}': fastq_1 is empty")
        }
        def paths = [row.fastq_1.toString()]
        if (row.fastq_2) {
            paths << row.fastq_2.toString()
        }
        def columns = ['fastq_1', 'fastq_2']
        def reads = paths.withIndex().collect { value, i -> inputFile(sample, columns[i], value) }
        def exts = reads.withIndex().collect { reads_file, i -> fastqExtension(sample, columns[i], reads_file.name) }
        [[id: sample, single_end: reads.size() == 1, exts: exts], reads]
    }
}

/* Reads and checks the Ultraplex barcode file; returns the barcode names (the sample-name suffixes). */
def readBarcodes(String path) {
    def barcodes = file(path)
    if (!barcodes.exists()) {
        fail("--barcodes file does not exist: ${path}")
    }
    def lines = barcodes.readLines().collect { it.trim() }.findAll { it }
    if (!lines) {
        fail("the barcode file ${path} is empty")
    }
    def names = lines.collect { line ->
        def match = line =~ barcodeLine()
        if (!match.matches()) {
            fail("barcode line '${line}' must look like NNNGGTTNN:name (5' barcode, then a name matching ${safeName()})")
        }
        match.group(2)
    }
    if (names.size() != (names as Set).size()) {
        fail("barcode names in ${path} must be unique")
    }
    return names
}

def checkedMinQuality() {
    def value = params.min_quality.toString()
    if (!(value ==~ /\d{1,2}/) || (value as int) > 60) {
        fail("--min_quality must be an integer between 0 and 60 (got '${value}')")
    }
    return value as int
}

def isTrue(value) {
    return value == true || value.toString().toLowerCase() == 'true'
}

workflow {
    if (isTrue(params.help)) {
        log.info(usage())
        return
    }
    if (!params.input) { fail('--input (the sample sheet) is required') }
    if (!params.fasta) { fail('--fasta (the reference) is required') }
    def fasta = file(params.fasta)
    if (!fasta.exists()) { fail("--fasta file does not exist: ${params.fasta}") }
    def minQuality = checkedMinQuality()
    def samples = readSamplesheet(params.input)

    ch_reads = Channel.empty()
    if (params.barcodes) {
        def barcodeNames = readBarcodes(params.barcodes)
        def paired = samples.findAll { meta, reads -> !meta.single_end }.collect { it[0].id }
        if (paired) {
            fail("with --barcodes every sample must be a single-end pool (fastq_2 empty); paired: ${paired.join(', ')}")
        }
        def names = samples.collectMany { meta, reads -> barcodeNames.collect { "${meta.id}_${it}".toString() } }
        def clash = names.findAll { name -> names.count(name) > 1 } as Set
        if (clash) {
            fail("demultiplexed sample names would clash: ${clash.join(', ')}")
        }
        ULTRAPLEX(Channel.fromList(samples), file(params.barcodes), minQuality)
        ch_reads = ULTRAPLEX.out.reads.flatMap { meta, files ->
            (files instanceof List ? files : [files]).collect { fastq ->
                def barcode = fastq.name - "ultraplex_demux_${meta.id}_" - ~/\.fastq\.gz$/
                [[id: "${meta.id}_${barcode}".toString(), single_end: true, exts: ['.fastq.gz']], [fastq]]
            }
        }
    } else {
        ch_reads = Channel.fromList(samples)
    }

    ch_qc = Channel.empty()
    if (!isTrue(params.skip_fastqc)) {
        FASTQC(ch_reads)
        ch_qc = ch_qc.mix(FASTQC.out.zip.map { meta, zips -> zips })
    }

    BOWTIE2_BUILD(fasta)
    BOWTIE2_ALIGN(ch_reads, BOWTIE2_BUILD.out.index)
    SAMTOOLS_FLAGSTAT(BOWTIE2_ALIGN.out.bam)
    ch_qc = ch_qc
        .mix(BOWTIE2_ALIGN.out.log.map { meta, log_file -> log_file })
        .mix(SAMTOOLS_FLAGSTAT.out.flagstat.map { meta, flagstat -> flagstat })

    // The title is free text: it travels base64-encoded (a shell-safe alphabet) and is decoded inside the task.
    def title = params.multiqc_title ? params.multiqc_title.toString() : ''
    MULTIQC(ch_qc.flatten().collect(), title.getBytes('UTF-8').encodeBase64().toString())
}

workflow.onComplete {
    if (isTrue(params.help)) {
        return
    }
    log.info(workflow.success
        ? "Done: results in ${params.outdir}, report in ${params.outdir}/multiqc/multiqc_report.html"
        : "Failed: ${workflow.errorMessage}")
}
