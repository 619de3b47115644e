"""Downloads and the EuroSAT download ladder, against a loopback HTTP server only.

``samembed.download``: a verified download (md5 and sha256), resume of a ``.part`` with an HTTP
Range request (and with a server that ignores Range), checksum mismatches, reuse or replacement of
an existing file, and one-line errors for unreachable, truncated and malformed transfers.

``samembed.datasets.eurosat.load_eurosat``: the ladder extracted? archive on disk? may download?
else one line that says what to do, with ``ARCHIVES`` pointed at zips of synthetic EuroSAT data
served on 127.0.0.1: download, verify, extract and index; fall back to the next mirror; extract
an archive fetched by hand; accept both published layouts and the class-folder directory itself;
reject an archive without the expected top folder, or one whose layout folder is already there
but incomplete."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socket
import threading
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from samembed.datasets import eurosat, make_synthetic_dataset
from samembed.datasets.eurosat import CLASSES, Archive, load_eurosat
from samembed.download import download_file, verify
from samembed.errors import DataNotFoundError, DownloadError

PAYLOAD = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes, every offset distinguishable
TIMEOUT = 5.0


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message and "\r" not in message
    return message


# --------------------------------------------------------------------------- loopback server


@dataclass
class FileServer:
    """What the loopback server serves and what it saw. ``files`` maps a URL path to its bytes;
    with ``honour_range`` off, Range headers are ignored (200 with the whole file);
    ``truncate_at[path] = n`` announces the full length but sends only ``n`` bytes, then hangs up;
    a path in ``garbage`` gets a reply that is not HTTP at all."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    truncate_at: dict[str, int] = field(default_factory=dict)
    garbage: set[str] = field(default_factory=set)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def url(self, path: str) -> str:
        return self.base_url + path

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]


def _handler_for(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            if self.path in state.garbage:
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                return
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if range_header and state.honour_range:
                assert range_header.startswith("bytes=") and range_header.endswith("-"), range_header
                start = int(range_header[len("bytes="):-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: state.truncate_at.get(self.path, len(body))])

        def log_message(self, *args):  # keep pytest's output clean
            pass

    return Handler


@pytest.fixture()
def server(monkeypatch):
    """A threaded HTTP server on 127.0.0.1 (a free port), shut down after the test."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # talk to 127.0.0.1 directly, never via a proxy
    state = FileServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # a short poll interval, so that shutdown() returns at once rather than after 0.5 s
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def dead_url():
    """A loopback URL where nothing listens: the port is bound (so no one else takes it) but
    never listened on, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/file.bin"


def test_server_fixture_honours_and_ignores_range(server):
    """The fixture itself: 206 with Content-Range for a Range request, 200 when told to ignore it."""
    server.files["/f"] = b"0123456789"
    request = urllib.request.Request(server.url("/f"), headers={"Range": "bytes=4-"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 4-9/10"
        assert response.read() == b"456789"
    server.honour_range = False
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 200 and response.read() == b"0123456789"
    assert server.requests == [("/f", "bytes=4-"), ("/f", "bytes=4-")]


# --------------------------------------------------------------------------- download_file


def test_verify(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert verify(path)
    assert verify(path, md5=md5_of(PAYLOAD), sha256=sha256_of(PAYLOAD))
    assert not verify(path, md5=md5_of(b"other"))
    assert not verify(path, sha256=sha256_of(b"other"))
    assert not verify(path, md5=md5_of(PAYLOAD), sha256=sha256_of(b"other"))


def test_download_fetches_and_verifies(server, tmp_path):
    server.files["/data/file.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "file.bin"
    result = download_file(server.url("/data/file.bin"), dest, md5=md5_of(PAYLOAD), sha256=sha256_of(PAYLOAD),
                           timeout=TIMEOUT)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("file.bin.part").exists()
    assert server.requests == [("/data/file.bin", None)]  # a fresh download asks for no range


@pytest.mark.parametrize("have", [1, 100_000, len(PAYLOAD) - 1])
def test_resume_sends_range_and_appends(server, tmp_path, have):
    server.files["/file.bin"] = PAYLOAD
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:have])
    download_file(server.url("/file.bin"), dest, md5=md5_of(PAYLOAD), sha256=sha256_of(PAYLOAD), timeout=TIMEOUT)
    assert server.requests == [("/file.bin", f"bytes={have}-")]
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.bin.part").exists()


def test_resume_when_server_ignores_range(server, tmp_path):
    """A 200 answer to a Range request carries the whole file: it must replace the .part, not
    be appended to it."""
    server.files["/file.bin"] = PAYLOAD
    server.honour_range = False
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:5000])
    download_file(server.url("/file.bin"), dest, sha256=sha256_of(PAYLOAD), timeout=TIMEOUT)
    assert server.requests == [("/file.bin", "bytes=5000-")]
    assert dest.read_bytes() == PAYLOAD  # no duplicated first 5000 bytes


def test_resume_of_a_part_that_is_already_whole(server, tmp_path):
    """The server answers 416 (nothing left): the .part is verified and becomes the file."""
    server.files["/file.bin"] = PAYLOAD
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download_file(server.url("/file.bin"), dest, md5=md5_of(PAYLOAD), timeout=TIMEOUT)
    assert server.requests == [("/file.bin", f"bytes={len(PAYLOAD)}-")]
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("checksum", ["md5", "sha256"])
@pytest.mark.parametrize("resumed", [False, True])
def test_checksum_mismatch_removes_everything(server, tmp_path, checksum, resumed):
    server.files["/file.bin"] = PAYLOAD
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    if resumed:
        part.write_bytes(b"X" * 1000)  # a .part from another file: the result cannot match
    wrong = {checksum: (md5_of if checksum == "md5" else sha256_of)(b"something else")}
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/file.bin"), dest, timeout=TIMEOUT, **wrong)
    message = assert_one_line(err)
    assert server.url("/file.bin") in message and "checksum" in message
    assert not dest.exists()
    assert not part.exists()


def test_existing_verified_dest_is_not_downloaded_again(server, tmp_path):
    server.files["/file.bin"] = b"the server's copy differs"
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    assert download_file(server.url("/file.bin"), dest, md5=md5_of(PAYLOAD), timeout=TIMEOUT) == dest
    assert server.requests == []
    assert dest.read_bytes() == PAYLOAD


def test_existing_corrupt_dest_is_replaced(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD[:-10] + b"corrupted!")
    download_file(server.url("/file.bin"), dest, sha256=sha256_of(PAYLOAD), timeout=TIMEOUT)
    assert server.requests == [("/file.bin", None)]
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_url(dead_url, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as err:
        download_file(dead_url, dest, md5=md5_of(PAYLOAD), timeout=TIMEOUT)
    message = assert_one_line(err)
    assert dead_url in message
    assert "run again" in message and "by hand" in message and str(dest) in message  # how to fix it
    assert not dest.exists()


def test_http_error(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/missing.bin"), dest, md5=md5_of(PAYLOAD), timeout=TIMEOUT)
    message = assert_one_line(err)
    assert server.url("/missing.bin") in message and "Not Found" in message
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()


@pytest.mark.parametrize("checksums", [{"md5": md5_of(PAYLOAD)}, {}], ids=["md5", "no-checksum"])
def test_truncated_transfer_keeps_the_part_for_resume(server, tmp_path, checksums):
    """A server that hangs up early: the error says so, the .part is kept (not discarded as a
    checksum mismatch, nor renamed to dest when there is no checksum), and the next call resumes."""
    server.files["/file.bin"] = PAYLOAD
    server.truncate_at["/file.bin"] = 70_000
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/file.bin"), dest, timeout=TIMEOUT, **checksums)
    message = assert_one_line(err)
    assert "resume" in message and f"70000 of {len(PAYLOAD)}" in message
    assert not dest.exists()
    assert part.read_bytes() == PAYLOAD[:70_000]

    del server.truncate_at["/file.bin"]
    download_file(server.url("/file.bin"), dest, timeout=TIMEOUT, **checksums)
    assert server.requests[-1] == ("/file.bin", "bytes=70000-")
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_malformed_response(server, tmp_path):
    server.garbage.add("/file.bin")
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/file.bin"), tmp_path / "file.bin", timeout=TIMEOUT)
    assert server.url("/file.bin") in assert_one_line(err)
    assert not (tmp_path / "file.bin").exists()


# --------------------------------------------------------------------------- EuroSAT


@dataclass(frozen=True)
class Zip:
    data: bytes
    layout: str  # top folder inside

    @property
    def md5(self) -> str:
        return md5_of(self.data)


def _zip_folder(root: Path, top: str, as_top: str | None = None) -> bytes:
    """Zip ``root/top`` with entries ``<as_top or top>/<Class>/<file>``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                zf.write(path, Path(as_top or top, path.relative_to(root / top)).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """Zips of a synthetic EuroSAT (2 images per class) in both published layouts, and one whose
    top folder is neither."""
    roots = {layout: make_synthetic_dataset(tmp_path_factory.mktemp(layout), layout=layout, images_per_class=2)
             for layout in ("2750", "EuroSAT_RGB")}
    made = {layout: Zip(_zip_folder(root, layout), layout) for layout, root in roots.items()}
    made["wrong-top"] = Zip(_zip_folder(roots["EuroSAT_RGB"], "EuroSAT_RGB", as_top="EuroSAT"), "EuroSAT_RGB")
    return made


@pytest.fixture()
def mirrors(server, monkeypatch):
    """Point ``eurosat.ARCHIVES`` at zips served by the loopback server, in the order given:
    ``mirrors(zip, ...)``; pass ``(zip, "404")`` or ``(zip, "bad-md5")`` for a broken mirror."""

    def serve(*entries) -> list[Archive]:
        archives = []
        for i, entry in enumerate(entries):
            zip_, fault = entry if isinstance(entry, tuple) else (entry, None)
            path = f"/mirror{i}/{zip_.layout}.zip"
            if fault != "404":
                server.files[path] = zip_.data
            md5 = md5_of(b"not this archive") if fault == "bad-md5" else zip_.md5
            archives.append(Archive(server.url(path), f"{zip_.layout}-{i}.zip", md5, zip_.layout))
        monkeypatch.setattr(eurosat, "ARCHIVES", archives)
        return archives

    return serve


def assert_eurosat_index(index, root: Path, images_per_class: int = 2):
    assert index.root == root
    assert index.class_names == CLASSES == sorted(CLASSES)
    assert len(index) == 10 * images_per_class
    for i, (image_id, label) in enumerate(zip(index.image_ids, index.labels)):
        class_name = image_id.split("/")[0]
        assert class_name == index.class_names[label]
        assert Path(image_id).name.startswith(class_name + "_")
        assert index.path(i).is_file()
    assert index.info["complete"] is False  # 20 images, not 27,000


def scratch_folders(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob(".extracting-*"))


@pytest.mark.parametrize("exists", [True, False])
def test_eurosat_missing_without_download(tmp_path, exists):
    data_dir = tmp_path / "eurosat"
    if exists:
        data_dir.mkdir()
    with pytest.raises(DataNotFoundError) as err:
        load_eurosat(data_dir, download=False)
    message = assert_one_line(err)
    assert "--data-dir" in message and "--download" in message and str(data_dir) in message
    assert not data_dir.exists() or not any(data_dir.iterdir())  # nothing was written


def test_eurosat_download_verify_extract_index(tmp_path, server, mirrors, zips):
    (archive,) = mirrors(zips["2750"])
    data_dir = tmp_path / "eurosat"
    index = load_eurosat(data_dir, download=True)
    assert_eurosat_index(index, data_dir / "2750")
    assert server.requests == [(archive.url.removeprefix(server.base_url), None)]
    assert (data_dir / archive.filename).read_bytes() == zips["2750"].data  # the verified archive is kept
    assert not (data_dir / (archive.filename + ".part")).exists()
    assert scratch_folders(data_dir) == []

    again = load_eurosat(data_dir, download=True)  # extracted now: no request, same index
    assert len(server.requests) == 1
    assert again.image_ids == index.image_ids and again.labels.tolist() == index.labels.tolist()


@pytest.mark.parametrize("fault", ["404", "bad-md5"])
def test_eurosat_falls_back_to_the_next_mirror(tmp_path, server, mirrors, zips, fault):
    first, second = mirrors((zips["2750"], fault), zips["EuroSAT_RGB"])
    data_dir = tmp_path / "eurosat"
    index = load_eurosat(data_dir, download=True)
    assert_eurosat_index(index, data_dir / "EuroSAT_RGB")
    assert server.paths_requested() == [a.url.removeprefix(server.base_url) for a in (first, second)]
    assert not (data_dir / first.filename).exists()
    assert not (data_dir / (first.filename + ".part")).exists()
    assert not (data_dir / "2750").exists()


def test_eurosat_every_mirror_fails(tmp_path, server, mirrors, zips):
    mirrors((zips["2750"], "404"), (zips["EuroSAT_RGB"], "bad-md5"))
    with pytest.raises(DownloadError) as err:
        load_eurosat(tmp_path, download=True)
    assert "every EuroSAT mirror failed" in assert_one_line(err)
    assert len(server.requests) == 2


@pytest.mark.parametrize("layout", ["2750", "EuroSAT_RGB"])
@pytest.mark.parametrize("download", [False, True])
def test_eurosat_archive_downloaded_by_hand(tmp_path, server, mirrors, zips, layout, download):
    archives = mirrors(zips["2750"], zips["EuroSAT_RGB"])
    (archive,) = [a for a in archives if a.layout == layout]
    (tmp_path / archive.filename).write_bytes(zips[layout].data)
    index = load_eurosat(tmp_path, download=download)
    assert_eurosat_index(index, tmp_path / layout)
    assert server.requests == []
    assert scratch_folders(tmp_path) == []


def test_eurosat_corrupt_archive_on_disk_is_downloaded_again(tmp_path, server, mirrors, zips):
    (archive,) = mirrors(zips["2750"])
    (tmp_path / archive.filename).write_bytes(zips["2750"].data[:1000])  # an interrupted manual download
    with pytest.raises(DataNotFoundError):
        load_eurosat(tmp_path, download=False)  # not trusted: it does not match its md5
    index = load_eurosat(tmp_path, download=True)
    assert_eurosat_index(index, tmp_path / "2750")
    assert len(server.requests) == 1
    assert (tmp_path / archive.filename).read_bytes() == zips["2750"].data


@pytest.mark.parametrize("layout", ["2750", "EuroSAT_RGB"])
@pytest.mark.parametrize("point_at", ["data-dir", "class-folders"])
def test_eurosat_existing_extraction(tmp_path, server, mirrors, zips, layout, point_at):
    mirrors(zips["2750"], zips["EuroSAT_RGB"])  # reachable, yet must not be asked
    root = make_synthetic_dataset(tmp_path / "data", layout=layout, images_per_class=2)
    data_dir = root if point_at == "data-dir" else root / layout
    for download in (False, True):
        index = load_eurosat(data_dir, download=download)
        assert_eurosat_index(index, root / layout)
    assert server.requests == []


def test_eurosat_archive_without_the_expected_top_folder(tmp_path, server, mirrors, zips):
    (archive,) = mirrors(zips["wrong-top"])  # md5 matches, but holds EuroSAT/ instead of EuroSAT_RGB/
    with pytest.raises(DataNotFoundError) as err:
        load_eurosat(tmp_path, download=True)
    message = assert_one_line(err)
    assert "EuroSAT_RGB/" in message and archive.filename in message
    assert scratch_folders(tmp_path) == []
    assert not (tmp_path / "EuroSAT_RGB").exists() and not (tmp_path / "EuroSAT").exists()


def test_eurosat_incomplete_folder_in_the_way(tmp_path, server, mirrors, zips):
    """A partial ``2750/`` (say, an interrupted manual unzip) next to a good archive: a one-line
    error, the partial folder left alone, no scratch folder left behind."""
    (archive,) = mirrors(zips["2750"])
    (tmp_path / archive.filename).write_bytes(zips["2750"].data)
    (tmp_path / "2750" / "Forest").mkdir(parents=True)
    (tmp_path / "2750" / "Forest" / "Forest_1.jpg").write_bytes(b"partial")
    with pytest.raises(DataNotFoundError) as err:
        load_eurosat(tmp_path, download=False)
    assert str(tmp_path / "2750") in assert_one_line(err)
    assert (tmp_path / "2750" / "Forest" / "Forest_1.jpg").read_bytes() == b"partial"
    assert scratch_folders(tmp_path) == []


# ----------------------------------------------------- archives checked on every use


def _sar_zip(tmp_path: Path, images_per_class: int) -> bytes:
    from samembed.datasets import make_synthetic_rasters

    root = make_synthetic_rasters(tmp_path / f"sar-{images_per_class}", "eurosat-sar",
                                  images_per_class=images_per_class, size=8)
    return _zip_folder(root, "EuroSAT-SAR")


def test_the_sar_archive_is_checked_against_its_recorded_sha256_every_time_it_is_used(tmp_path):
    """Before: only the download recorded it; another archive under the same name was extracted."""
    from samembed.datasets import load_dataset

    data = tmp_path / "data"
    data.mkdir()
    archive = data / "EuroSAT-SAR.zip"
    archive.write_bytes(_sar_zip(tmp_path, 1))  # a copy put there by hand: its sha256 is recorded at first use
    assert len(load_dataset("eurosat-sar", data)) == 10
    assert (data / "EuroSAT-SAR.zip.sha256").read_text().split()[0] == hashlib.sha256(archive.read_bytes()).hexdigest()
    shutil.rmtree(data / "EuroSAT-SAR")
    assert len(load_dataset("eurosat-sar", data)) == 10  # the same archive again: used
    shutil.rmtree(data / "EuroSAT-SAR")
    archive.write_bytes(_sar_zip(tmp_path, 2))  # another archive under the same name
    for download in (False, True):
        with pytest.raises(DownloadError, match="does not match the sha256 recorded at its first download") as err:
            load_dataset("eurosat-sar", data, download=download)
        assert_one_line(err)
    assert not (data / "EuroSAT-SAR").exists()


def test_a_tar_or_truncated_archive_where_a_zip_is_expected_is_one_line(tmp_path):
    """Before: zipfile's BadZipFile traceback."""
    import tarfile

    from samembed.datasets import load_dataset

    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "EuroSAT-SAR.zip", "w") as tar:  # a tar under the zip's name
        tar.add(tmp_path / "data", arcname="EuroSAT-SAR")
    with pytest.raises(DataNotFoundError, match=r"EuroSAT-SAR.zip is not a readable zip archive \(BadZipFile") as err:
        load_dataset("eurosat-sar", data)
    assert "delete it and run again with --download" in assert_one_line(err)
    truncated = tmp_path / "EuroSAT.zip"
    truncated.write_bytes(_sar_zip(tmp_path, 1)[:-100])  # the end (the zip's directory) cut off
    with pytest.raises(DataNotFoundError, match="EuroSAT.zip is not a readable zip archive") as err:
        eurosat.extract_archive_into(truncated, data, "2750")
    assert_one_line(err)
    assert scratch_folders(data) == [] and not (data / "2750").exists()
