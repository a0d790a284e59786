"""engine.uploads: files known by their content, refused in plain words, scanned by a real clamd-speaking
server on loopback (failing closed), and kept by hash where nobody can read or change them unnoticed."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import socketserver
import stat
import struct
import tempfile
import threading
import tracemalloc
import wave
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image  # Pillow comes with WeasyPrint: real JPEG, GIF and WebP files

from engine.config import UploadSettings
from engine.errors import DamagedFile, InvalidInput
from engine.uploads import check, identify, read, safe_download_name, scan, store

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")
    )


def picture(format_: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, format=format_)
    return out.getvalue()


def docx_types(main: str = f"{DOCX_TYPE}.main+xml", extra: str = "") -> str:
    return (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/word/document.xml" ContentType="{main}"/>{extra}</Types>'
    )


def docx(*, document: bool = True, macros: bool = False) -> bytes:
    # A .docm renamed: its main part is macro-enabled (here beside a part that claims to be a plain document).
    main = "application/vnd.ms-word.document.macroEnabled.main+xml" if macros else f"{DOCX_TYPE}.main+xml"
    extra = f'<Override PartName="/word/other.xml" ContentType="{DOCX_TYPE}.main+xml"/>' if macros else ""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", docx_types(main, extra))
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="word/document.xml" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/officeDocument"/></Relationships>',
        )
        if document:
            archive.writestr(
                "word/document.xml",
                '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                "<w:body><w:p><w:r><w:t>My views</w:t></w:r></w:p></w:body></w:document>",
            )
        if macros:
            archive.writestr("word/vbaProject.bin", b"\0" * 16)
    return out.getvalue()


def compound_file(stream: str) -> bytes:
    """A compound file (the container of .doc, .xls and .ppt): header, one FAT sector, one directory sector
    holding the root and one empty stream, named `stream` (WordDocument in a .doc, Workbook in an .xls)."""
    free, end, fat_sector, none = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
    header += struct.pack("<HHHHH6sIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, bytes(6), 0, 1, 1, 0, 0x1000, end, 0, end, 0)
    header += struct.pack("<109I", 0, *[free] * 108)
    fat = struct.pack("<128I", fat_sector, end, *[free] * 126)

    def entry(name: str, kind: int, child: int) -> bytes:
        encoded = (name + "\0").encode("utf-16-le") if name else b""
        return (
            encoded.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(encoded), kind, 1, none, none, child)
            + bytes(16 + 4 + 16)
            + struct.pack("<IQ", end, 0)
        )

    directory = entry("Root Entry", 5, 1) + entry(stream, 2, none) + entry("", 0, none) * 2
    return header + fat + directory


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(8000)
        recording.writeframes(b"\0\0" * 800)
    return out.getvalue()


# An MPEG-1 layer III frame header (128 kbit/s, 44.1 kHz), then the rest of the frame.
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)
ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"


def iso_media(major: bytes, *compatible: bytes) -> bytes:
    ftyp = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + struct.pack(">I", 16) + b"mdat" + bytes(8)


OGG = b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis" + bytes(23)
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.mark.parametrize(
    ("filename", "data", "media_type", "extension"),
    [
        ("letter.pdf", PDF, "application/pdf", "pdf"),
        ("report.PDF", b"\r\n" + PDF, "application/pdf", "pdf"),
        ("views.docx", docx(), DOCX_TYPE, "docx"),
        ("old letter.doc", compound_file("WordDocument"), "application/msword", "doc"),
        ("drawing.png", png(), "image/png", "png"),
        ("photo.jpg", picture("JPEG"), "image/jpeg", "jpg"),
        ("photo.JPEG", picture("JPEG"), "image/jpeg", "jpg"),
        ("smile.gif", picture("GIF"), "image/gif", "gif"),
        ("photo.webp", picture("WEBP"), "image/webp", "webp"),
        ("IMG_0001.HEIC", iso_media(b"heic", b"mif1", b"heic"), "image/heic", "heic"),
        ("IMG_0002.heic", iso_media(b"mif1", b"mif1", b"heic"), "image/heic", "heic"),
        ("picture.heif", iso_media(b"mif1", b"mif1"), "image/heif", "heif"),
        ("song.mp3", ID3 + MP3_FRAME, "audio/mpeg", "mp3"),
        ("no-tag.mp3", MP3_FRAME * 2, "audio/mpeg", "mp3"),
        ("my voice.m4a", iso_media(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4", "m4a"),
        ("recorder.m4a", iso_media(b"mp42", b"isom"), "audio/mp4", "m4a"),
        ("me talking.wav", wav(), "audio/wav", "wav"),
        ("me singing.ogg", OGG, "audio/ogg", "ogg"),
        ("C:\\Users\\Parent\\Desktop\\letter.pdf", PDF, "application/pdf", "pdf"),
    ],
)
def test_each_kind_we_accept_is_known_by_its_content(
    filename: str, data: bytes, media_type: str, extension: str
) -> None:
    kind = identify(data, filename)
    assert (kind.media_type, kind.extension) == (media_type, extension)
    assert kind.words.startswith(("a ", "an "))


@pytest.mark.parametrize(
    ("filename", "data", "said", "found"),
    [
        ("report.pdf", png(), "is not a PDF", "its content is a PNG image"),
        ("drawing.png", PDF, "is not a PNG image", "its content is a PDF"),
        ("photo.jpg", png(), "is not a JPEG image", "its content is a PNG image"),
        ("views.doc", docx(), "is not a Word 97-2003 document", "its content is a Word document"),
        ("voice.mp3", wav(), "is not an MP3 recording", "its content is a WAV recording"),
    ],
)
def test_a_file_whose_name_says_another_kind_is_refused_naming_both(
    filename: str, data: bytes, said: str, found: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        identify(data, filename)
    assert str(refused.value) == f"The file ‘{filename}’ {said}: {found}"


def test_a_web_page_named_pdf_is_refused_even_with_pdf_inside_it() -> None:
    for data in (HTML, b"<html><script>alert(1)</script>%PDF-1.4\n%%EOF"):
        with pytest.raises(InvalidInput, match=r"‘page.pdf’ is not a PDF: its content is a web page \(HTML\)"):
            identify(data, "page.pdf")


def test_svg_is_refused_by_its_name_and_by_its_content() -> None:
    with pytest.raises(InvalidInput, match="‘logo.svg’ is not a type we accept. Send a PDF, a Word document"):
        identify(SVG, "logo.svg")
    with pytest.raises(
        InvalidInput, match="its content is an SVG picture, which we do not accept because it can carry"
    ):
        identify(SVG, "logo.png")


def test_a_zip_that_is_not_a_word_document_is_refused() -> None:
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    for data in (plain_zip.getvalue(), docx(document=False), docx(macros=True), b"PK\x03\x04" + bytes(60)):
        with pytest.raises(InvalidInput, match="its content is a ZIP archive that is not a Word document"):
            identify(data, "views.docx")


def test_a_zip_bomb_is_judged_by_its_list_of_names_without_being_unpacked() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", docx_types())
        archive.writestr("word/document.xml", b" " * (100 * 1024 * 1024))
    data = bomb.getvalue()
    assert len(data) < 1024 * 1024
    tracemalloc.start()
    try:
        kind = identify(data, "views.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kind.extension == "docx"
    assert peak < 5 * 1024 * 1024  # the 100 MB inside were never unpacked


def test_an_excel_or_powerpoint_file_is_not_a_word_document() -> None:
    with pytest.raises(InvalidInput, match="its content is an older Office file that is not a Word document"):
        identify(compound_file("Workbook"), "sums.doc")
    with pytest.raises(InvalidInput, match="‘sums.xls’ is not a type we accept"):
        identify(compound_file("Workbook"), "sums.xls")


@pytest.mark.parametrize(
    ("filename", "data"),
    [("setup.exe", b"MZ\x90\x00" + bytes(60)), ("notes.txt", b"hello"), ("archive.zip", docx()), ("page.html", HTML)],
)
def test_a_kind_we_do_not_accept_is_refused_saying_what_we_accept(filename: str, data: bytes) -> None:
    with pytest.raises(InvalidInput) as refused:
        identify(data, filename)
    assert str(refused.value) == (
        f"The file ‘{filename}’ is not a type we accept. Send a PDF, a Word document (.docx or .doc), "
        "a picture (JPEG, PNG, GIF, WebP or HEIC) or a sound recording (MP3, M4A, WAV or OGG)"
    )


@pytest.mark.parametrize(
    ("data", "content"),
    [(b"MZ\x90\x00" + bytes(60), "a program"), (b"just some words\n", "plain text"), (bytes(range(256)), "not a type")],
)
def test_content_we_do_not_accept_behind_an_accepted_name_is_refused(data: bytes, content: str) -> None:
    with pytest.raises(InvalidInput, match=f"‘letter.pdf’ is not a PDF: its content is {content}"):
        identify(data, "letter.pdf")


def test_a_name_with_no_extension_is_refused_saying_what_to_rename_it() -> None:
    with pytest.raises(InvalidInput, match=r"‘scan’ has no type at the end of its name .*rename it to end in \.pdf"):
        identify(PDF, "scan")
    with pytest.raises(InvalidInput, match="‘scan.’ has no type at the end of its name"):
        identify(bytes(10), "scan.")


def test_a_file_over_the_limit_is_refused_with_its_size_and_the_limit() -> None:
    settings = UploadSettings(max_megabytes=1)
    exactly = PDF + b" " * (1024 * 1024 - len(PDF))
    assert check(exactly, "letter.pdf", settings).extension == "pdf"
    with pytest.raises(InvalidInput) as refused:
        check(PDF + b" " * (1024 * 1024 * 3 // 2), "big.pdf", settings)
    assert str(refused.value) == "The file ‘big.pdf’ is 1.5 MB: the largest we accept is 1 MB"
    with pytest.raises(InvalidInput, match="‘big.pdf’ is more than 1 MB: the largest we accept is 1 MB"):
        check(exactly + b" ", "big.pdf", settings)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="The file ‘letter.pdf’ is empty"):
        check(b"", "letter.pdf", UploadSettings())


def test_a_file_is_stored_by_hash_0600_in_0700_folders_once(tmp_path: Path) -> None:
    sha, path = store(png(), tmp_path / "documents")
    again = store(png(), tmp_path / "documents")
    uploads = tmp_path / "documents" / "uploads"
    assert again == (sha, path)
    assert Path(path) == uploads / sha[:2] / sha
    assert Path(path).is_absolute()
    assert Path(path).read_bytes() == png()
    assert sha == hashlib.sha256(png()).hexdigest()
    assert [p for p in uploads.rglob("*") if p.is_file()] == [Path(path)]  # one file, no temporary left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(uploads).st_mode) == stat.S_IMODE(os.stat(uploads / sha[:2]).st_mode) == 0o700


def test_a_file_is_stored_at_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _, path = store(PDF, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(path).parent).st_mode) == 0o700


def test_read_gives_the_bytes_and_refuses_a_changed_or_missing_file(tmp_path: Path) -> None:
    sha, path = store(PDF, tmp_path)
    assert read(path, sha) == PDF
    Path(path).write_bytes(PDF.replace(b"1.4", b"1.5"))
    with pytest.raises(DamagedFile, match="has been changed or damaged"):
        read(path, sha)
    assert store(PDF, tmp_path) == (sha, path)  # a damaged copy is written again whole
    assert read(path, sha) == PDF
    os.unlink(path)
    with pytest.raises(DamagedFile, match="is missing"):
        read(path, sha)


def test_a_download_name_never_carries_the_name_sent() -> None:
    assert safe_download_name(12, 3, identify(PDF, "my son's report.pdf")) == "case-12-upload-3.pdf"
    assert safe_download_name(12, 4, "JPG") == "case-12-upload-4.jpg"
    with pytest.raises(ValueError, match="not the extension"):
        safe_download_name(12, 5, "html")
    with pytest.raises(ValueError, match="not the extension"):
        safe_download_name(12, 5, 'pdf"; filename="x.html')


# -- the virus check: a server on loopback speaking clamd's INSTREAM protocol --------------------------


class Clamd(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behaviour: str, address: Any = ("127.0.0.1", 0), family: int = socket.AF_INET) -> None:
        self.address_family = family
        self.behaviour = behaviour  # "ok", "found", "garbled"; "hang up", "close" (after the file), "silent"
        self.scans: list[tuple[bytes, list[bytes]]] = []
        self.connections = 0
        self.release = threading.Event()
        super().__init__(address, ClamdHandler)


class ClamdHandler(socketserver.StreamRequestHandler):
    server: Clamd

    def handle(self) -> None:
        self.server.connections += 1
        if self.server.behaviour == "hang up":
            return
        command = self.rfile.read(len(b"zINSTREAM\0"))
        chunks = []
        while (size := struct.unpack(">I", self.rfile.read(4))[0]) != 0:
            chunks.append(self.rfile.read(size))
        self.server.scans.append((command, chunks))
        replies = {"ok": b"stream: OK\0", "found": b"stream: Eicar-Test-Signature FOUND\0", "garbled": b"hello?\0"}
        if self.server.behaviour == "silent":
            self.server.release.wait(10)
        elif self.server.behaviour != "close":
            self.wfile.write(replies[self.server.behaviour])


@contextmanager
def clamd(behaviour: str) -> Iterator[tuple[Clamd, UploadSettings]]:
    server = Clamd(behaviour)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        port = server.server_address[1]
        yield server, UploadSettings(clamd=f"tcp://127.0.0.1:{port}", clamd_timeout_seconds=2)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_a_clean_file_passes_the_virus_check_sent_in_length_prefixed_chunks() -> None:
    data = PDF + bytes(range(256)) * 1000  # more than one chunk
    with clamd("ok") as (server, settings):
        assert check(data, "letter.pdf", settings).extension == "pdf"
    [(command, chunks)] = server.scans
    assert command == b"zINSTREAM\0"
    assert len(chunks) > 1
    assert b"".join(chunks) == data


UNSCANNED = "The file could not be checked for viruses, so it was not kept. Try again later"


def test_a_file_with_a_virus_is_refused_without_naming_the_virus() -> None:
    with clamd("found") as (server, settings), pytest.raises(InvalidInput) as refused:
        check(PDF, "letter.pdf", settings)
    assert "refused by the virus check" in str(refused.value)
    assert "Eicar" not in str(refused.value)
    assert server.scans


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [
        ("hang up", "(could not be reached|did not answer)"),  # at once: a reset, or no answer, as the race goes
        ("close", "did not answer"),
        ("garbled", "gave an answer we could not read"),
    ],
)
def test_a_virus_check_that_does_not_answer_properly_refuses_the_file(
    behaviour: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with clamd(behaviour) as (server, settings), pytest.raises(InvalidInput) as refused:
        scan(PDF, settings)
    assert server.connections == 1
    assert str(refused.value) == UNSCANNED  # the sender is told what to do, not where the scanner is
    assert re.search(f"the virus check at {re.escape(str(settings.clamd))} {problem}", caplog.text)
    assert "%PDF" not in caplog.text


def test_a_virus_check_that_takes_too_long_refuses_the_file(caplog: pytest.LogCaptureFixture) -> None:
    with clamd("silent") as (server, settings), pytest.raises(InvalidInput) as refused:
        scan(PDF, settings.model_copy(update={"clamd_timeout_seconds": 0.3}))
    assert str(refused.value) == UNSCANNED
    assert f"the virus check at {settings.clamd} could not be reached" in caplog.text
    assert server.scans


def test_a_virus_check_that_cannot_be_reached_refuses_the_file(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = UploadSettings(clamd=f"tcp://127.0.0.1:{port}", clamd_timeout_seconds=2)
    with pytest.raises(InvalidInput) as refused:
        check(PDF, "letter.pdf", settings)
    assert str(refused.value) == UNSCANNED
    assert f"the virus check at tcp://127.0.0.1:{port} could not be reached" in caplog.text


def test_the_virus_check_over_a_unix_socket() -> None:
    folder = tempfile.mkdtemp(prefix="clamd-")  # short: a socket's path has a limit of about 100 bytes
    server = Clamd("found", f"{folder}/clamd.ctl", socket.AF_UNIX)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with pytest.raises(InvalidInput, match="refused by the virus check"):
            scan(PDF, UploadSettings(clamd=f"unix://{folder}/clamd.ctl"))
        assert server.scans == [(b"zINSTREAM\0", [PDF])]
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder)


def test_a_file_refused_by_its_content_never_reaches_the_virus_check_and_no_clamd_means_no_scan() -> None:
    with clamd("ok") as (server, settings), pytest.raises(InvalidInput, match="not a PDF"):
        check(png(), "drawing.pdf", settings)
    assert server.connections == 0
    assert check(PDF, "letter.pdf", UploadSettings(clamd=None)).extension == "pdf"


@pytest.mark.parametrize("marker", [b"/JavaScript", b"/Launch"])
def test_a_pdf_that_would_run_something_when_opened_is_refused(marker: bytes) -> None:
    active = PDF.replace(b"trailer", b"<< /OpenAction << /S " + marker + b" /JS (app.alert(1)) >> >>\ntrailer")
    with pytest.raises(InvalidInput, match="script or a program inside it"):
        identify(active, "letter.pdf")
    assert identify(PDF, "letter.pdf").extension == "pdf"
