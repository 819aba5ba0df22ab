"""Demo data for the bundled demo pipeline, written in seconds so a new user (or a test) can launch a real run.

Two data sets are written side by side:

* **synthetic** — a random reference (3 contigs, 20 kb) with paired-end reads for two samples drawn from it with
  about 1 % substitution errors, plus a single-end *pool* whose reads start with a 5' barcode ``NNN<bc>NN`` (random
  UMI bases around a 4-base barcode) from two barcodes, and the Ultraplex barcode file that splits it;
* **lambda** — the real lambda phage reads and reference that Debian's ``bowtie2-examples`` package ships.

Only Python's ``random`` is used, with a fixed seed, and gzip files carry no timestamp, so the same arguments give
byte-identical files.
"""
from __future__ import annotations

import csv
import gzip
import io
import random
import shutil
from pathlib import Path

# Where Debian's `bowtie2-examples` package installs its example data (documented by the package).
BOWTIE2_EXAMPLES = Path("/usr/share/doc/bowtie2/examples")

CONTIG_LENGTHS = {"contig1": 9000, "contig2": 7000, "contig3": 4000}
READ_LENGTH = 100
FRAGMENT_MEAN, FRAGMENT_SD = 300, 30
ERROR_RATE = 0.01
PAIRED_SAMPLES = ("sample1", "sample2")
POOL_SAMPLE = "pool"
# 5' barcodes in Ultraplex's notation: N = UMI base moved to the read header, letters = the barcode itself.
BARCODES = {"bc1": "NNNGGTTNN", "bc2": "NNNCCAANN"}
POOL_INSERT_LENGTH = 75

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
# Phred+33 characters: mostly high, some mid, a few low. Characters below '@' (64) make FastQC detect the
# encoding as Sanger / Illumina 1.9; an all-'I' file would be taken for Illumina 1.5 (phred+64).
_HIGH_QUALITY = "FGHIIIII"
_LOW_QUALITY = "#+5:?"


def write_demo_data(
    directory: Path,
    *,
    reads_per_sample: int = 2000,
    seed: int = 1,
    bowtie2_examples: Path = BOWTIE2_EXAMPLES,
) -> dict[str, Path]:
    """Write the demo reference, reads, sample sheets and barcode file into ``directory``; return their paths.

    Keys: ``fasta``, ``samplesheet`` (the two paired samples), ``barcodes``, ``samplesheet_barcoded`` (the pool),
    ``lambda_fasta``, ``samplesheet_lambda``, and one ``<sample>_1``/``<sample>_2`` (or ``pool``) key per reads
    file. Sample sheets hold absolute paths, so they work from any launch directory.
    """
    if reads_per_sample < 1:
        raise ValueError("reads_per_sample must be at least 1")
    examples = _lambda_sources(Path(bowtie2_examples))  # fail before writing anything
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written: dict[str, Path] = {}

    reference = {name: _random_sequence(rng, length) for name, length in CONTIG_LENGTHS.items()}
    written["fasta"] = _write_fasta(directory / "reference.fa", reference)

    rows = []
    for sample in PAIRED_SAMPLES:
        read_1, read_2 = directory / f"{sample}_R1.fastq.gz", directory / f"{sample}_R2.fastq.gz"
        _write_paired_reads(rng, reference, sample, reads_per_sample, read_1, read_2)
        written[f"{sample}_1"], written[f"{sample}_2"] = read_1, read_2
        rows.append({"sample": sample, "fastq_1": str(read_1), "fastq_2": str(read_2)})
    written["samplesheet"] = _write_samplesheet(directory / "samplesheet.csv", rows)

    pool = directory / f"{POOL_SAMPLE}.fastq.gz"
    _write_barcoded_pool(rng, reference, reads_per_sample, pool)
    written[POOL_SAMPLE] = pool
    written["barcodes"] = _write_barcodes(directory / "barcodes.csv")
    written["samplesheet_barcoded"] = _write_samplesheet(
        directory / "samplesheet_barcoded.csv", [{"sample": POOL_SAMPLE, "fastq_1": str(pool), "fastq_2": ""}]
    )

    copies = {key: directory / source.name for key, source in examples.items()}
    for key, target in copies.items():
        shutil.copyfile(examples[key], target)
    written["lambda_fasta"] = copies["lambda_fasta"]
    written["lambda_1"], written["lambda_2"] = copies["lambda_1"], copies["lambda_2"]
    written["samplesheet_lambda"] = _write_samplesheet(
        directory / "samplesheet_lambda.csv",
        [{"sample": "lambda", "fastq_1": str(copies["lambda_1"]), "fastq_2": str(copies["lambda_2"])}],
    )
    return written


def _lambda_sources(examples: Path) -> dict[str, Path]:
    """The lambda phage files; a clear error naming the Debian package when they are not installed."""
    sources = {
        "lambda_fasta": examples / "reference" / "lambda_virus.fa.gz",
        "lambda_1": examples / "reads" / "reads_1.fq.gz",
        "lambda_2": examples / "reads" / "reads_2.fq.gz",
    }
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            "the lambda phage demo data comes from Debian's `bowtie2-examples` package "
            f"(apt-get install bowtie2-examples); missing: {', '.join(missing)}"
        )
    return sources


def _random_sequence(rng: random.Random, length: int) -> str:
    return "".join(rng.choices("ACGT", k=length))


def _reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def _mutate(rng: random.Random, sequence: str) -> str:
    """About ERROR_RATE substitutions, each to a different base (a sequencing error, not a no-op)."""
    bases = list(sequence)
    for index in range(len(bases)):
        if rng.random() < ERROR_RATE:
            bases[index] = rng.choice("ACGT".replace(bases[index], ""))
    return "".join(bases)


def _qualities(rng: random.Random, length: int) -> str:
    """High qualities that sag towards the 3' end, with an occasional low base, like a real Illumina read."""
    chars = []
    for index in range(length):
        low_chance = 0.02 + 0.10 * index / length
        chars.append(rng.choice(_LOW_QUALITY) if rng.random() < low_chance else rng.choice(_HIGH_QUALITY))
    return "".join(chars)


def _fragment(rng: random.Random, reference: dict[str, str], length: int) -> str:
    """A random fragment of the reference (contigs weighted by length), on a random strand."""
    names = list(reference)
    name = rng.choices(names, weights=[len(reference[n]) for n in names])[0]
    contig = reference[name]
    start = rng.randrange(0, len(contig) - length + 1)
    fragment = contig[start:start + length]
    return _reverse_complement(fragment) if rng.random() < 0.5 else fragment


def _fastq_record(name: str, sequence: str, qualities: str) -> str:
    return f"@{name}\n{sequence}\n+\n{qualities}\n"


def _gzip_writer(path: Path):
    """A text gzip stream without a timestamp, so reruns give identical bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="ascii")


def _write_paired_reads(rng: random.Random, reference: dict[str, str], sample: str, count: int,
                        read_1: Path, read_2: Path) -> None:
    with _gzip_writer(read_1) as out_1, _gzip_writer(read_2) as out_2:
        for index in range(count):
            length = max(READ_LENGTH, min(500, round(rng.gauss(FRAGMENT_MEAN, FRAGMENT_SD))))
            fragment = _fragment(rng, reference, length)
            forward = _mutate(rng, fragment[:READ_LENGTH])
            reverse = _mutate(rng, _reverse_complement(fragment)[:READ_LENGTH])
            out_1.write(_fastq_record(f"{sample}.{index} 1:N:0", forward, _qualities(rng, READ_LENGTH)))
            out_2.write(_fastq_record(f"{sample}.{index} 2:N:0", reverse, _qualities(rng, READ_LENGTH)))


def _write_barcoded_pool(rng: random.Random, reference: dict[str, str], count: int, path: Path) -> None:
    """Single-end reads, each ``NNN<barcode>NN`` + an insert; barcodes alternate so each gets half the reads."""
    patterns = list(BARCODES.values())
    with _gzip_writer(path) as out:
        for index in range(count):
            pattern = patterns[index % len(patterns)]
            prefix = "".join(rng.choice("ACGT") if base == "N" else base for base in pattern)
            insert = _mutate(rng, _fragment(rng, reference, POOL_INSERT_LENGTH))
            sequence = prefix + insert
            out.write(_fastq_record(f"{POOL_SAMPLE}.{index}", sequence, _qualities(rng, len(sequence))))


def _write_fasta(path: Path, sequences: dict[str, str], width: int = 70) -> Path:
    with path.open("w") as out:
        for name, sequence in sequences.items():
            out.write(f">{name}\n")
            for start in range(0, len(sequence), width):
                out.write(sequence[start:start + width] + "\n")
    return path


def _write_barcodes(path: Path) -> Path:
    """Ultraplex's format: one 5' barcode per line, ``<pattern>:<name>``; the name labels the output file."""
    path.write_text("".join(f"{pattern}:{name}\n" for name, pattern in BARCODES.items()))
    return path


def _write_samplesheet(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["sample", "fastq_1", "fastq_2"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
