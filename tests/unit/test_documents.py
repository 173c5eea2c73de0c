import io

import pytest
from werkzeug.datastructures import FileStorage

from portal.referrals.documents import DocumentRefused, read_upload, safe_filename


def storage(content: bytes, name: str = "file.pdf") -> FileStorage:
    return FileStorage(stream=io.BytesIO(content), filename=name)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
    ],
)
def test_accepted_formats_are_recognised_by_content(content, expected):
    assert read_upload(storage(content, "whatever.bin"), 1000).content_type == expected


def test_a_renamed_file_is_refused_whatever_its_name():
    with pytest.raises(DocumentRefused, match="not a PDF, PNG or JPEG"):
        read_upload(storage(b"MZ\x90\x00 executable", "scan.pdf"), 1000)


def test_a_file_over_the_limit_is_refused():
    with pytest.raises(DocumentRefused, match="larger than"):
        read_upload(storage(b"%PDF-" + b"x" * 2000), 1000)


def test_an_empty_file_is_refused():
    with pytest.raises(DocumentRefused, match="empty"):
        read_upload(storage(b""), 1000)


def test_filenames_lose_paths_and_control_characters():
    assert safe_filename("C:\\Users\\me\\scan\x07.pdf") == "scan.pdf"
    assert safe_filename("../../etc/passwd") == "passwd"
