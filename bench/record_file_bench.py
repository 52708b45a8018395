"""Record files: rows/s and peak RSS of reading and of processing a file, by file size.

For each size (``--sizes``, default 100,000 and 1,000,000 rows) it writes a CSV record file
of that many rows (metro, bus, bike-share and steps records of ``--users`` users, a few
invalid rows), then, each in a fresh Python process so that each peak is that size's own:

- ``read``: the file through ``providers.files.RecordReader`` (parse and validate every
  row), nothing else;
- ``process``: the whole job (``providers.jobs.process``) on a private PostgreSQL database
  (created and dropped here), with a crediting that answers "credited" for every record
  and writes nothing: the reader, the chunks, and each chunk's counts, errors and
  checkpoint in one transaction. The real crediting's cost is not in this figure.

Peak RSS is the child process's ``ru_maxrss`` (the high-water mark of its resident memory,
interpreter and imports included). Memory is flat in file size when the two sizes' peaks
are about equal. Output: one JSON object per (mode, size), and a summary.

    .venv/bin/python bench/record_file_bench.py [--sizes 100000,1000000] [--modes read,process]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CST = timezone(timedelta(hours=8))
HEADER = ("record_id,user_ref,kind,city,entry_station_id,exit_station_id,tapped_in_at,"
          "tapped_out_at,line_id,board_stop_id,boarded_at,alight_stop_id,alighted_at,"
          "started_at,ended_at,distance_m,bike_id,date,steps\n")


def write_file(path: Path, rows: int, users: int) -> None:
    """A CSV of ``rows`` records, one in 10,000 invalid; written as it is generated."""
    rnd = random.Random(rows)
    base = datetime(2026, 12, 1, 7, 0, tzinfo=CST)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            user = f"card-{rnd.randrange(users):06d}"
            start = base + timedelta(seconds=rnd.randrange(14 * 3600))
            end = start + timedelta(minutes=rnd.randrange(5, 60))
            a, b = start.isoformat(), end.isoformat()
            kind = i % 4
            if kind == 0:
                cells = ["metro_trip", "", "luohu", "futian", a, b] + [""] * 11
            elif kind == 1:
                cells = ["bus_trip", "", "", "", "", "", "M375", "s1", a, "s9", b] + [""] * 6
            elif kind == 2:
                cells = (["bike_ride", ""] + [""] * 9 + [a, b, str(rnd.randrange(300, 8000)),
                                                        f"bike-{i % 5000}", "", ""])
            else:
                cells = ["daily_steps", ""] + [""] * 13 + ["2026-12-01",
                                                          str(rnd.randrange(20_000))]
            if i % 10_000 == 9_999:
                cells[-1 if kind == 3 else 4 if kind == 0 else 2] = "not-valid/"
            out.write(f"r{i},{user}," + ",".join(cells) + "\n")


def child(mode: str, path: str, chunk: int) -> None:
    """Run in a fresh process: measure one mode over one file, print a JSON line."""
    from carbon_credits.providers.files import RecordReader
    from carbon_credits.providers.records import Record

    counts: dict[str, int] = {}
    if mode == "read":
        started = time.perf_counter()
        with open(path, "rb") as fh:
            for _line, item in RecordReader(fh, "shenzhen"):
                key = "records" if isinstance(item, Record) else "errors"
                counts[key] = counts.get(key, 0) + 1
        elapsed = time.perf_counter() - started
    else:
        counts, elapsed = process(path, chunk)
    rows = sum(v for k, v in counts.items() if k in ("records", "errors", "rows_read"))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "rows": rows, "seconds": round(elapsed, 2),
                      "rows_per_s": round(rows / elapsed), "peak_rss_mb": round(peak_kib / 1024, 1),
                      "counts": counts}))


def process(path: str, chunk: int) -> tuple[dict[str, int], float]:
    """The job's counts, and the seconds of ``jobs.process`` alone (not the database's
    creation, the migrations or the upload)."""
    import io

    import psycopg
    from benchlib import bench_config

    from carbon_credits.factory import create_app
    from carbon_credits.providers import jobs
    from carbon_credits.setup import upgrade_schema

    name = f"record_file_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        with tempfile.TemporaryDirectory() as uploads:
            config = bench_config(
                instance_path=Path(uploads),
                database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                jwt_secret="x" * 32, upload_dir=Path(uploads), record_chunk_rows=chunk)
            app = create_app(config)
            rt = app.extensions["carbon_credits"]
            upgrade_schema(rt.db)
            jobs.dispatch = lambda _rt, _id: None  # processed below, in this process
            with open(path, "rb") as fh:
                job, _ = jobs.upload(rt, "bench", io.BufferedReader(fh), "text/csv")  # type: ignore[arg-type]

            def credit_all(_provider: str, rows: list) -> list:  # type: ignore[type-arg]
                return [jobs.RowOutcome(line, "credited") for line, _ in rows]

            started = time.perf_counter()
            done = jobs.process(rt, job.id, credit_all)
            elapsed = time.perf_counter() - started
            assert done is not None and done.status == "done"
            rt.db.dispose()
            return {"rows_read": done.rows_read, "credited": done.credited,
                    "refused": done.refused}, elapsed
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--modes", default="read,process")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.chunk)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"records-{size}.csv"
            write_file(path, size, args.users)
            for mode in args.modes.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--chunk", str(args.chunk), "--child", mode,
                     str(path)], check=True, capture_output=True, text=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["file_mb"] = round(path.stat().st_size / 1e6, 1)
                print(json.dumps(result), flush=True)
                results.append(result)
            path.unlink()
    print("summary:")
    for r in results:
        print(f"  {r['mode']:8} {r['rows']:>9,} rows  {r['file_mb']:>7} MB  "
              f"{r['rows_per_s']:>8,} rows/s  peak RSS {r['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
