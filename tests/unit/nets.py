"""Small hand-built networks whose distances can be checked by hand.

Metro (distances in metres along each line)::

    M1:  A --1000-- X1 --2000-- B --3000-- C          (A..C along M1: 6000)
    M2:  D --500--  X2 --1000-- E --1000-- C          (D..C along M2: 2500)

X1 and X2 are platforms of the interchange station X (their parent_station), so the two
lines meet at X and at C. A -> C is shorter with a transfer at X (1000 + 2000 = 3000) than
along M1 (6000).

Bus::

    B1 (avg trip 1200):  s1 -400- s2 -600- s3 -800- s4 -1200- s5        length 3000
    B2 (no average):     t1 -2000- t2 -3000- t3 -4000- t4               length 9000
    B3 (no average):     u1 -800- u2 -700- u3                            length 1500
    B4 (avg trip 5000):  v1 -1000- v2 -1000- v3                          length 2000
    LOOP (no average):   w1 -1000- w2 -1000- w3 -1000- w1                length 3000
    HUBLINE:             hub-n -700- s1   (hub-n is a platform of the station "hub")
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from methodology.factors import NET_FACTOR, Factor, FactorSet, factor_set
from methodology.network import Line, Station, TransitNetwork

STARTED = datetime(2024, 5, 6, 8, 30, tzinfo=UTC)


def _st(stop_id: str, parent: str | None = None) -> Station:
    return Station(stop_id=stop_id, name=stop_id.upper(), lat=22.5, lon=114.0, parent=parent)


def stations() -> list[Station]:
    metro = [_st(s) for s in ("A", "B", "C", "D", "E", "X")]
    metro += [_st("X1", parent="X"), _st("X2", parent="X")]
    bus = [_st(s) for s in ("s1", "s2", "s3", "s4", "s5", "t1", "t2", "t3", "t4",
                            "u1", "u2", "u3", "v1", "v2", "v3", "w1", "w2", "w3", "hub")]
    bus += [_st("hub-n", parent="hub"), _st("hub-s", parent="hub")]
    return metro + bus


def lines() -> list[Line]:
    return [
        Line("M1", "metro", "Metro 1", ("A", "X1", "B", "C"), (0, 1000, 3000, 6000)),
        Line("M2", "metro", "Metro 2", ("D", "X2", "E", "C"), (0, 500, 1500, 2500)),
        Line("B1", "bus", "Bus 1", ("s1", "s2", "s3", "s4", "s5"),
             (0, 400, 1000, 1800, 3000), avg_trip_m=1200),
        Line("B2", "bus", "Bus 2", ("t1", "t2", "t3", "t4"), (0, 2000, 5000, 9000)),
        Line("B3", "bus", "Bus 3", ("u1", "u2", "u3"), (0, 800, 1500)),
        Line("B4", "bus", "Bus 4", ("v1", "v2", "v3"), (0, 1000, 2000), avg_trip_m=5000),
        Line("LOOP", "bus", "Loop", ("w1", "w2", "w3", "w1"), (0, 1000, 2000, 3000)),
        Line("HUBLINE", "bus", "Hub line", ("hub-n", "s1"), (0, 700)),
    ]


def network() -> TransitNetwork:
    return TransitNetwork("testcity", "t-1", stations(), lines())


def net_factors(mode: str, g_per_pkm: str, *extra: Factor) -> FactorSet:
    return factor_set(mode, "testcity", "v1", "net",
                      Factor(NET_FACTOR, Decimal(g_per_pkm), "g CO2/person-km", "test"), *extra)
