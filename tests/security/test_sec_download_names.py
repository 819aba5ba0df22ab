"""Names that come back as paths (issue 14 D): a researcher uploads files with hostile names through the real tus
upload, then downloads them one by one, as a bulk zip, as a deferred zip job and as a project zip whose project and
sample names are hostile too.

Whatever a client, unzip tool or Windows best-fit conversion does to a name on the way (NFKC turns full-width
``．．／`` into ``../``), the ``filename=`` fallback and every zip entry stay one harmless component; ``filename*``
carries the exact name Flow stored, so nothing of the researcher's name is lost where the client can take it.
"""
from __future__ import annotations

import base64
import io
import unicodedata
import zipfile
from urllib.parse import unquote

import pytest
from waiting import wait_for_async

TUS = {"Tus-Resumable": "1.0.0"}
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
                   *(f"{kind}{n}" for kind in ("COM", "LPT") for n in "0123456789")}

HOSTILE = {
    "full-width dots and solidus": "．．／．．／etc／passwd",
    "full-width reverse solidus": "．．＼．．＼Windows＼win.ini",
    "fullwidth solidus alone": "reads\uff0f..\uff0fR1.fq.gz",
    "division slash U+2215": "..\u2215..\u2215etc\u2215shadow",
    "fraction slash U+2044": "a\u2044..\u2044b.txt",
    "one dot leader U+2024": "\u2024\u2024\u2215\u2024\u2024\u2215secret.txt",
    "two dot leader U+2025": "\u2025\uff0fx.txt",
    "small full stop U+FE52": "\ufe52\ufe52\uff0fy.txt",
    "account-of folds to a/c": "\u2100.txt",
    "RTL override": "invoice\u202efdp.exe",
    "NUL": "a\x00b.txt",
    "CR/LF header injection": "report\r\nSet-Cookie: flow=1.txt",
    "backslash path": "..\\..\\boot.ini",
    "quotes and percent": '"%2e%2e%2f".txt',
    "very long": "\uff21" * 200 + ".fastq.gz",
    "only dots": "....",
    "only full-width dots": "\uff0e\uff0e\uff0e",
    "Windows device": "CON.txt",
    "full-width Windows device": "\uff4e\uff55\uff4c",
    "superscript Windows device": "COM\u00b9.fq",
    "trailing dots": "notes.txt...",
}
HOSTILE_FOLDERS = {"folder of full-width dots": "．．／．．", "folder with a path": "../../tmp", "device folder": "AUX"}


# --- the researcher's actions --------------------------------------------------------------------------------------


async def upload(user, project: int, filename: str, data: bytes, sample: int | None = None) -> int:
    """One file through the tus API with the raw name in Upload-Metadata, as any tus client sends it."""
    meta = {"filename": filename, "project": project, **({"sample": sample} if sample else {})}
    encoded = ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in meta.items())
    created = await user.request("POST", "uploads", raw=b"", headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encoded})
    assert created.code == 201, created.body
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    sent = await user.request("PATCH", f"uploads/{upload_id}", raw=data, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert sent.code == 204, sent.body
    return int(sent.headers["Flow-DataFile-Id"])


async def upload_all(user, project: int, names: dict[str, str], sample: int | None = None) -> dict[str, int]:
    return {label: await upload(user, project, name, f"bytes of {label}".encode(), sample)
            for label, name in names.items()}


async def wait_for_job(user, job_id: int) -> dict:
    reply = await wait_for_async(lambda: user.get(f"jobs/{job_id}"),
                                 until=lambda r: r.code != 200 or r.json["status"] not in ("pending", "running"),
                                 what=f"zip job {job_id} to finish", interval=0.05)
    assert reply.code == 200, reply.body
    return reply.json


# --- what must hold for any name -------------------------------------------------------------------------------


def assert_one_harmless_component(part: str, what: str) -> None:
    """After NFKC (what a normalising client does), a name is one path component a disk can hold as a file."""
    folded = unicodedata.normalize("NFKC", part)
    assert part and folded.strip("._ "), (what, part)
    assert not folded.startswith(".") and not folded.endswith((".", " ")), (what, part, folded)
    assert "/" not in folded and "\\" not in folded, (what, part, folded)
    assert ".." not in folded, (what, part, folded)
    assert not any(unicodedata.category(c) == "Cc" for c in folded), (what, part)
    assert not any(c in ':*?"<>|' for c in folded), (what, part, folded)
    assert folded.split(".", 1)[0].rstrip().upper() not in WINDOWS_DEVICES, (what, part, folded)
    assert len(part.encode()) <= 255, (what, len(part.encode()))


def disposition_names(disposition: str) -> tuple[str, str]:
    """(``filename=`` fallback, ``filename*`` decoded) of a Content-Disposition we sent."""
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition, disposition
    assert disposition.startswith('attachment; filename="'), disposition
    fallback, _, rest = disposition.removeprefix('attachment; filename="').partition('"; filename*=UTF-8\'\'')
    assert rest and ";" not in rest and '"' not in fallback and "\\" not in fallback, disposition
    return fallback, unquote(rest, errors="strict")


def assert_safe_disposition(disposition: str, stored: str, what: str) -> None:
    fallback, exact = disposition_names(disposition)
    assert_one_harmless_component(fallback, what)
    assert fallback.isascii() and "%" not in fallback, (what, fallback)
    assert exact == stored, (what, exact, stored)


def zip_names(body: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return [info.orig_filename for info in archive.infolist()]


def assert_safe_entries(names: list[str], what: str) -> None:
    """Only the folder "/" separates; every part is harmless; no two entries unpack onto the same file."""
    for name in names:
        parts = name.split("/")
        assert len(parts) <= 2, (what, name)
        for part in parts:
            assert_one_harmless_component(part, f"{what}: {name!r}")
    keys = [unicodedata.normalize("NFKC", name).casefold() for name in names]
    assert len(set(keys)) == len(keys), (what, names)


# --- the stories ---------------------------------------------------------------------------------------------------


async def test_each_hostile_name_downloads_with_a_harmless_fallback_and_its_exact_stored_name(api) -> None:
    alice = api.as_user("alice")
    project = (await alice.post("projects", {"name": "hostile names"})).json["id"]
    ids = await upload_all(alice, project, HOSTILE)

    for label, file_id in ids.items():
        stored = (await alice.get(f"files/{file_id}")).json["filename"]
        reply = await alice.get(f"files/{file_id}/content")

        assert reply.code == 200, (label, reply.body)
        assert reply.body == f"bytes of {label}".encode()
        assert reply.headers["Content-Security-Policy"] == "sandbox"
        assert_safe_disposition(reply.headers["Content-Disposition"], stored, label)
        assert not any(c.startswith("flow=") for c in reply.headers.get_list("Set-Cookie")), label  # no injection


async def test_lookalike_names_are_stored_exactly_and_only_tamed_on_the_way_out(api) -> None:
    alice = api.as_user("alice")
    project = (await alice.post("projects", {"name": "lookalikes"})).json["id"]
    exact = {label: HOSTILE[label] for label in ("full-width dots and solidus", "division slash U+2215",
                                                  "one dot leader U+2024", "fraction slash U+2044")}
    ids = await upload_all(alice, project, exact)

    for label, file_id in ids.items():
        stored = (await alice.get(f"files/{file_id}")).json["filename"]
        fallback, back = disposition_names((await alice.get(f"files/{file_id}/content")).headers["Content-Disposition"])
        assert stored == unicodedata.normalize("NFC", exact[label]).lstrip("."), label  # the researcher's name, kept
        assert back == stored
        assert fallback != stored and "/" not in unicodedata.normalize("NFKC", fallback), (label, fallback)
    rtl = await upload(alice, project, HOSTILE["RTL override"], b"x")
    assert "\u202e" not in (await alice.get(f"files/{rtl}")).json["filename"]  # display spoofing is not a name


async def test_bulk_and_deferred_zips_of_hostile_names_unpack_to_one_folder_level_at_most(api) -> None:
    alice = api.as_user("alice")
    project = (await alice.post("projects", {"name": "zips"})).json["id"]
    sample = (await alice.post(f"projects/{project}/samples", {"name": HOSTILE_FOLDERS["folder of full-width dots"]}))
    assert sample.code == 201, sample.body
    loose = await upload_all(alice, project, HOSTILE)
    in_sample = await upload_all(alice, project, HOSTILE, sample=sample.json["id"])
    ids = [*loose.values(), *in_sample.values()]

    streamed = await alice.post("downloads", {"files": ids})
    assert streamed.code == 200, streamed.body
    names = zip_names(streamed.body)
    assert len(names) == len(ids)
    assert_safe_entries(names, "bulk zip")
    assert sum("/" in name for name in names) == len(in_sample)  # the sample folder, and nothing deeper

    queued = await alice.post("downloads", {"files": ids, "deferred": True})
    assert queued.code == 202, queued.body
    job = await wait_for_job(alice, queued.json["job"])
    assert job["status"] == "succeeded", job
    built = await alice.get(f"jobs/{queued.json['job']}/content")
    assert built.code == 200
    assert zip_names(built.body) == names
    assert_safe_disposition(built.headers["Content-Disposition"], "flow-download.zip", "deferred zip")


@pytest.mark.parametrize("project_name", ["．．／．．／etc", "..\u2215..\u2215home", "\u202egpj.exe", "NUL",
                                          "\uff21" * 250, "Liver ‥ RNA"])
async def test_a_project_zip_with_hostile_project_and_sample_names_stays_in_its_folder(api, project_name) -> None:
    alice = api.as_user("alice")
    created = await alice.post("projects", {"name": project_name})
    assert created.code == 201, created.body
    project = created.json["id"]
    for label, folder in HOSTILE_FOLDERS.items():
        sample = (await alice.post(f"projects/{project}/samples", {"name": folder})).json["id"]
        await upload(alice, project, HOSTILE["full-width dots and solidus"], label.encode(), sample)
    await upload_all(alice, project, {"loose": "．．／loose.txt", "named like a folder": "．．／．．"})

    reply = await alice.get(f"projects/{project}/download")

    assert reply.code == 200, reply.body
    fallback, exact = disposition_names(reply.headers["Content-Disposition"])
    assert_one_harmless_component(fallback, project_name)
    assert exact.endswith(".zip") and len(exact.encode()) <= 255
    if len(project_name.encode()) < 250 and "\u202e" not in project_name:
        assert exact == project_name.lstrip(".") + ".zip"  # the project's own name, for clients that read filename*
    names = zip_names(reply.body)
    assert len(names) == len(HOSTILE_FOLDERS) + 2
    assert_safe_entries(names, project_name)
