"""Data files: registration (from uploads and pipeline outputs), listing with filters and keyset paging, rename,
move between projects, delete. Every query is filtered by permissions.visible_datafiles."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from ..db.models import DataFile, Origin

# Compound extensions first, so "reads.fastq.gz" is "fastq", not "gz".
FILE_TYPES = [
    (".fastq.gz", "fastq"), (".fq.gz", "fastq"), (".fastq", "fastq"), (".fq", "fastq"),
    (".fasta.gz", "fasta"), (".fa.gz", "fasta"), (".fasta", "fasta"), (".fa", "fasta"), (".fna", "fasta"),
    (".bam", "bam"), (".sam", "sam"), (".cram", "cram"), (".bai", "bai"), (".vcf.gz", "vcf"), (".vcf", "vcf"),
    (".bed", "bed"), (".gtf", "gtf"), (".gff", "gff"), (".gff3", "gff"), (".csv", "csv"), (".tsv", "tsv"),
    (".html", "html"), (".json", "json"), (".yaml", "yaml"), (".yml", "yaml"), (".txt", "text"),
    (".zip", "zip"), (".tar.gz", "archive"), (".gz", "gzip"), (".pdf", "pdf"), (".png", "image"),
]


def file_type(filename: str) -> str:
    lower = filename.lower()
    for suffix, kind in FILE_TYPES:
        if lower.endswith(suffix):
            return kind
    return PurePosixPath(lower).suffix.lstrip(".")[:32]


def register_file(
    session: Session,
    *,
    owner_id: int,
    project_id: int,
    sample_id: int | None,
    filename: str,
    storage_path: str,
    size: int,
    sha256: str,
    origin: Origin = Origin.upload,
    execution_id: int | None = None,
) -> DataFile:
    """Create the DataFile row for bytes already in place under ``storage_path`` (the caller checked rights)."""
    datafile = DataFile(
        owner_id=owner_id, project_id=project_id, sample_id=sample_id, filename=filename,
        file_type=file_type(filename), size=size, sha256=sha256, storage_path=storage_path, origin=origin,
        execution_id=execution_id,
    )
    session.add(datafile)
    session.flush()
    return datafile


def datafile_json(datafile: DataFile) -> dict[str, Any]:
    """The public view of a data file (never its storage path)."""
    return {
        "id": datafile.id,
        "filename": datafile.filename,
        "type": datafile.file_type,
        "size": datafile.size,
        "sha256": datafile.sha256,
        "project": datafile.project_id,
        "sample": datafile.sample_id,
        "owner": datafile.owner_id,
        "origin": datafile.origin.value,
        "execution": datafile.execution_id,
        "created_at": datafile.created_at.isoformat(),
    }
