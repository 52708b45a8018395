"""Loading a city's network: the admin upload endpoint and `flask import-gtfs`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.gtfs_feed import sample_feed


def _city() -> str:
    return f"lakeside-{uuid.uuid4().hex[:8]}"


def test_an_admin_uploads_a_gtfs_zip_and_it_becomes_the_citys_network(
        client: FlaskClient, token: Any, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {token('net-admin', role='admin')}",
             "Content-Type": "application/zip"}
    city = _city()
    feed = sample_feed().write_zip(tmp_path / "feed.zip").read_bytes()
    r = client.post(f"/v1/admin/networks/{city}?version=2026-11&reason=first+import",
                    data=feed, headers=admin)
    assert r.status_code == 201, r.json
    assert (r.json["city"], r.json["version"]) == (city, "2026-11")
    assert r.json["routes_by_mode"] == {"metro": 2, "bus": 1}
    again = client.post(f"/v1/admin/networks/{city}?version=2026-11&reason=again",
                        data=feed, headers=admin)
    assert again.status_code == 409
    audit = client.get("/v1/admin/audit", headers=admin).json["items"]
    assert any(a["target"].endswith(f"{city}/2026-11") and a["actor"] == "net-admin"
               for a in audit)


def test_a_feed_larger_than_the_json_limit_is_accepted_by_the_upload(
        client: FlaskClient, token: Any, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {token('net-admin', role='admin')}",
             "Content-Type": "application/zip"}
    path = sample_feed().write_zip(tmp_path / "feed.zip")
    import zipfile
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr("notes.txt", b"x" * (2 << 20))  # 2 MiB: over the 1 MiB JSON limit
    r = client.post(f"/v1/admin/networks/{_city()}?reason=big", data=path.read_bytes(),
                    headers=admin)
    assert r.status_code == 201, r.json


def test_a_broken_feed_is_422_naming_file_and_line_and_stores_nothing(
        client: FlaskClient, token: Any, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {token('net-admin', role='admin')}",
             "Content-Type": "application/zip"}
    r = client.post(f"/v1/admin/networks/{_city()}?reason=oops", data=b"PK not a zip",
                    headers=admin)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "invalid_feed" and "feed" in r.json["error"]["fields"]


def test_uploads_need_an_admin_a_zip_and_a_reason(client: FlaskClient, token: Any,
                                                  auth: dict[str, str]) -> None:
    zip_headers = {"Content-Type": "application/zip"}
    admin = {"Authorization": f"Bearer {token('net-admin', role='admin')}"}
    assert client.post("/v1/admin/networks/x?reason=abc", data=b"PK",
                       headers={**auth, **zip_headers}).status_code == 403
    r = client.post("/v1/admin/networks/x?reason=abc", data=b"{}",
                    headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 415
    r = client.post("/v1/admin/networks/x", data=b"PK", headers={**admin, **zip_headers})
    assert r.status_code == 422 and "reason" in r.json["error"]["fields"]


def test_the_cli_imports_a_gtfs_folder(app: Flask, tmp_path: Path) -> None:
    city = _city()
    folder = sample_feed().write_dir(tmp_path / "feed")
    result = app.test_cli_runner().invoke(args=["import-gtfs", "--city", city, "--version",
                                                "v1", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"imported {city} network v1" in result.output
    assert "warning:" in result.output  # the tram route is skipped, and said so


def test_the_cli_refuses_a_broken_feed_naming_the_file(app: Flask, tmp_path: Path) -> None:
    folder = sample_feed().write_dir(tmp_path / "feed")
    (folder / "stop_times.txt").unlink()
    result = app.test_cli_runner().invoke(args=["import-gtfs", "--city", _city(), str(folder)])
    assert result.exit_code != 0
    assert "stop_times.txt" in result.output


def test_the_cli_prints_a_broken_feeds_error_once(app: Flask, tmp_path: Path) -> None:
    folder = sample_feed().write_dir(tmp_path / "feed")
    (folder / "stop_times.txt").unlink()
    result = app.test_cli_runner().invoke(args=["import-gtfs", "--city", _city(), str(folder)])
    assert result.exit_code != 0
    detail = "stop_times.txt: required file is missing from the feed"
    assert result.output.count(detail) == 1, result.output


def test_the_cli_prints_a_field_detail_the_message_does_not_say(app: Flask,
                                                                tmp_path: Path) -> None:
    folder = sample_feed().write_dir(tmp_path / "feed")
    result = app.test_cli_runner().invoke(args=["import-gtfs", "--city", " spaced ",
                                                str(folder)])
    assert result.exit_code != 0
    assert result.output.count("city must be 1 to") == 1, result.output
    assert "city: 1 to" in result.output
