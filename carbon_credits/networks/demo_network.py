"""A small demo network for Shenzhen, so a new install can post trips in its first minute.

Three metro lines (parts of Line 1 罗宝线, Line 3 龙岗线 and Line 4 龙华线, which form a
loop through the interchanges 老街, 会展中心 and 少年宫, so shortest paths matter) and two
bus lines. Positions are approximated from public maps; distances are great-circle between
consecutive stops (no shape data), rounded to whole metres. Real deployments import the
operator's GTFS feed instead.
"""

from __future__ import annotations

from methodology.geo import haversine_m
from methodology.network import Line, Station

CITY = "shenzhen"
VERSION = "demo-2026.1"
SOURCE = ("demo network shipped with carbon-credits: approximate public-map positions, "
          "great-circle distances between consecutive stops")

_METRO = {
    "luohu": ("罗湖 Luohu", 22.5314, 114.1183),
    "guomao": ("国贸 Guomao", 22.5402, 114.1195),
    "laojie": ("老街 Laojie", 22.5446, 114.1166),
    "dajuyuan": ("大剧院 Grand Theater", 22.5437, 114.1034),
    "kexueguan": ("科学馆 Science Museum", 22.5420, 114.0930),
    "huaqianglu": ("华强路 Huaqiang Road", 22.5413, 114.0858),
    "gangxia": ("岗厦 Gangxia", 22.5382, 114.0669),
    "huizhanzhongxin": ("会展中心 Convention Center", 22.5372, 114.0554),
    "gouwugongyuan": ("购物公园 Shopping Park", 22.5355, 114.0501),
    "xiangmihu": ("香蜜湖 Xiangmihu", 22.5412, 114.0353),
    "chegongmiao": ("车公庙 Chegongmiao", 22.5357, 114.0247),
    "futiankouan": ("福田口岸 Futian Checkpoint", 22.5178, 114.0684),
    "fumin": ("福民 Fumin", 22.5253, 114.0679),
    "shiminzhongxin": ("市民中心 Civic Center", 22.5436, 114.0563),
    "shaoniangong": ("少年宫 Children's Palace", 22.5525, 114.0559),
    "lianhuabei": ("莲花北 Lianhua North", 22.5609, 114.0582),
    "shangmeilin": ("上梅林 Shangmeilin", 22.5690, 114.0593),
    "hongling": ("红岭 Hongling", 22.5496, 114.1031),
    "tongxinling": ("通新岭 Tongxinling", 22.5481, 114.0946),
    "huaxin": ("华新 Huaxin", 22.5463, 114.0847),
    "lianhuacun": ("莲花村 Lianhuacun", 22.5506, 114.0727),
}

_BUS = {
    "b-luohu": ("罗湖火车站 Luohu Railway Station", 22.5320, 114.1170),
    "b-guomao": ("国贸 Guomao", 22.5400, 114.1180),
    "b-dajuyuan": ("大剧院 Grand Theater", 22.5430, 114.1040),
    "b-kexueguan": ("科学馆 Science Museum", 22.5415, 114.0930),
    "b-huaqianglu": ("华强路口 Huaqiang Road", 22.5410, 114.0860),
    "b-gangxia": ("岗厦 Gangxia", 22.5378, 114.0670),
    "b-futiankouan": ("福田口岸 Futian Checkpoint", 22.5190, 114.0690),
    "b-fumin": ("福民 Fumin", 22.5260, 114.0690),
    "b-huizhan": ("会展中心 Convention Center", 22.5380, 114.0560),
    "b-shimin": ("市民中心 Civic Center", 22.5440, 114.0570),
    "b-shaoniangong": ("少年宫 Children's Palace", 22.5530, 114.0550),
}

LUOHU = "luohu"
FUTIAN = "futian"
DISTRICTS = {"luohu": "罗湖区 Luohu", "futian": "福田区 Futian"}
"""District ids used by reports, with their names. The boundary between the two runs
roughly along 红岭路 Hongling Road: 大剧院 and 红岭 are in Luohu, 科学馆 and 通新岭 in Futian."""

_IN_LUOHU = frozenset({"luohu", "guomao", "laojie", "dajuyuan", "hongling",
                       "b-luohu", "b-guomao", "b-dajuyuan"})
"""Demo stops in 罗湖区; every other demo stop is in 福田区."""

# line id -> (mode, name, stops in order, average trip length in metres or None)
_LINES: dict[str, tuple[str, str, tuple[str, ...], int | None]] = {
    "metro-1": ("metro", "1号线 罗宝线 Line 1",
                ("luohu", "guomao", "laojie", "dajuyuan", "kexueguan", "huaqianglu",
                 "gangxia", "huizhanzhongxin", "gouwugongyuan", "xiangmihu", "chegongmiao"),
                None),
    "metro-3": ("metro", "3号线 龙岗线 Line 3 (west part)",
                ("laojie", "hongling", "tongxinling", "huaxin", "lianhuacun", "shaoniangong"),
                None),
    "metro-4": ("metro", "4号线 龙华线 Line 4 (south part)",
                ("futiankouan", "fumin", "huizhanzhongxin", "shiminzhongxin", "shaoniangong",
                 "lianhuabei", "shangmeilin"),
                None),
    "bus-1": ("bus", "1路 Bus 1",
              ("b-luohu", "b-guomao", "b-dajuyuan", "b-kexueguan", "b-huaqianglu", "b-gangxia"),
              None),
    "bus-10": ("bus", "10路 Bus 10",
               ("b-futiankouan", "b-fumin", "b-huizhan", "b-shimin", "b-shaoniangong"),
               2400),
}


def stations() -> list[Station]:
    return [Station(stop_id=sid, name=name, lat=lat, lon=lon,
                    district=LUOHU if sid in _IN_LUOHU else FUTIAN)
            for sid, (name, lat, lon) in {**_METRO, **_BUS}.items()]


def lines() -> list[Line]:
    coords = {s.stop_id: (s.lat, s.lon) for s in stations()}
    result = []
    for line_id, (mode, name, stops, avg) in _LINES.items():
        cumulative = [0]
        for a, b in zip(stops, stops[1:], strict=False):
            cumulative.append(cumulative[-1] + round(haversine_m(*coords[a], *coords[b])))
        result.append(Line(line_id=line_id, mode=mode, name=name, stops=stops,
                           cumulative_m=tuple(cumulative), avg_trip_m=avg))
    return result
