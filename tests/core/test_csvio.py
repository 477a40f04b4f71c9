"""Tests for biobank.core.csvio: encodings, headers, quoted newlines and line numbers."""

from __future__ import annotations

import csv
import io
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biobank.core.csvio import decode_bytes, read_csv
from biobank.core.errors import ImportRejected, ValidationError

ROWS = [["张三", "北京市朝阳区", "T2D;CAD"], ["李四", "上海市徐汇区", ""]]


def _text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["name", "site", "cohorts"])
    writer.writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("encoding", "prefix", "reported"),
    [("utf-8", b"", "utf-8"), ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"), ("gb18030", b"", "gb18030")],
)
def test_read_csv__utf8_bom_and_gb18030_give_same_rows(
    tmp_path: Path, encoding: str, prefix: bytes, reported: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(prefix + _text(ROWS).encode(encoding))
    got = read_csv(path, required=["name", "site"], optional=["cohorts"])
    assert got.encoding == reported
    assert got.columns == ["name", "site", "cohorts"]
    assert [[r[c] for c in got.columns] for r in got.rows] == ROWS
    assert [r.line for r in got.rows] == [2, 3]


def test_decode_bytes__neither_encoding_names_file_and_offset() -> None:
    data = "name\n张三\n".encode() + b"\x80\x80"
    offset = len("name\n张三\n".encode())
    with pytest.raises(ValidationError, match=rf"x\.csv: .*first bad byte 0x80 at offset {offset}"):
        decode_bytes(data, source="x.csv")


def test_decode_bytes__utf16_refused() -> None:
    with pytest.raises(ValidationError, match="UTF-16"):
        decode_bytes("name\n".encode("utf-16"), source="x.csv")


def test_decode_bytes__bom_with_invalid_utf8_refused_not_garbled() -> None:
    data = b"\xef\xbb\xbfname\n" + "张三".encode("gb18030") + b"\n"
    with pytest.raises(ValidationError, match="mixes encodings"):
        decode_bytes(data, source="x.csv")


def test_read_csv__quoted_newlines_and_commas_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        'name,site\n"王\n秀英","朝阳, 北京"\n\n李四,徐汇\n"a\n\nb",c\n', encoding="utf-8"
    )
    got = read_csv(path, required=["name", "site"])
    assert [(r.line, r.end_line) for r in got.rows] == [(2, 3), (5, 5), (6, 8)]
    assert got.rows[0]["name"] == "王\n秀英"
    assert got.rows[0]["site"] == "朝阳, 北京"


def test_read_csv__missing_unknown_and_repeated_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("name,nmae,extra,extra\nx,y,z,w\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as info:
        read_csv(path, required=["name", "site"])
    messages = [p.message for p in info.value.problems]
    assert any("missing column: site" in m for m in messages)
    assert any("unknown columns: nmae, extra, extra" in m for m in messages)
    assert any("repeated column: extra" in m for m in messages)
    assert all(p.line == 1 for p in info.value.problems)


def test_read_csv__tab_separated_file_explained(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_text("name\tsite\nx\ty\n", encoding="utf-8")
    with pytest.raises(ImportRejected, match="tab-separated"):
        read_csv(path, required=["name", "site"])


def test_read_csv__wrong_field_count_and_unclosed_quote(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('name,site\na,b,c\nd,e\n"f,g\n', encoding="utf-8")
    with pytest.raises(ImportRejected) as info:
        read_csv(path, required=["name", "site"])
    assert [(p.line, p.message.split(":")[0]) for p in info.value.problems] == [
        (2, "the row has 3 fields but the header has 2"),
        (4, "malformed CSV"),
    ]


def test_read_csv__empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match=r"empty\.csv.*the file is empty"):
        read_csv(empty, required=["name"])
    with pytest.raises(ValidationError, match="cannot read the file"):
        read_csv(tmp_path / "nope.csv", required=["name"])


_cell = st.text(
    alphabet=st.sampled_from(
        list(string.ascii_letters + string.digits + ' ,"\n;-') + list("张王李秀英北京")
    ),
    max_size=12,
).map(str.strip)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(_cell, min_size=2, max_size=2), min_size=1, max_size=6).filter(
        lambda rows: all(any(c for c in row) for row in rows)
    ),
    encoding=st.sampled_from(["utf-8", "gb18030"]),
)
def test_read_csv__round_trip_property(
    tmp_path: Path, rows: list[list[str]], encoding: str
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["a", "b"])
    starts = []
    line = 2
    for row in rows:
        starts.append(line)
        before = buf.tell()
        writer.writerow(row)
        line += buf.getvalue()[before:].count("\n")
    path = tmp_path / "p.csv"
    path.write_bytes(buf.getvalue().encode(encoding))
    got = read_csv(path, required=["a", "b"])
    assert [[r["a"], r["b"]] for r in got.rows] == rows
    assert [r.line for r in got.rows] == starts


@pytest.mark.parametrize("name", ["英", "欧阳伟", "王秀英"])
def test_decode_bytes__short_gb18030_that_is_also_valid_utf8(name: str) -> None:
    data = f"name\n{name}\n".encode("gb18030")
    text, encoding = decode_bytes(data, source="x.csv")
    assert (text, encoding) == (f"name\n{name}\n", "gb18030")


@pytest.mark.parametrize("name", ["José", "Müller", "µL 5", "张三"])
def test_decode_bytes__utf8_kept_when_both_decode(name: str) -> None:
    data = f"name\n{name}\n".encode()
    assert decode_bytes(data, source="x.csv") == (f"name\n{name}\n", "utf-8")


@pytest.mark.parametrize(
    "names", ["陳大文,張偉,黃美玲", "臺北榮民總醫院,林志明", "王小明\n李華\n趙敏"]
)
def test_decode_bytes__big5_is_refused_not_read_as_gb18030(names: str) -> None:
    data = ("name,site\n" + "\n".join(f"{n},臺北" for n in names.split(","))).encode("big5")
    with pytest.raises(ValidationError, match=r"nor GB18030 \(decodes to the private-use") as err:
        decode_bytes(data, source="big5.csv")
    message = str(err.value)
    assert "tried UTF-8, GB18030" in message
    assert "big5.csv" in message
    assert "Big5" in message


def test_decode_bytes__rare_name_characters_in_cjk_extensions_are_kept() -> None:
    text = "name\n𠮷野家\n㐀\n"  # extension B and extension A
    for encoding in ("utf-8", "gb18030"):
        assert decode_bytes(text.encode(encoding), source="x.csv")[0] == text


def test_decode_bytes__private_use_characters_in_utf8_are_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"UTF-8 \(decodes to the private-use or unassigned character U\+E000"
    ):
        decode_bytes("name\n王\ue000\n".encode(), source="x.csv")
