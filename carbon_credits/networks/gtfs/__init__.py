"""A GTFS feed (a .zip or a folder) read into the methodology's stations and line patterns.

Pure: no database. The whole feed is parsed and checked before anything is returned, so a
caller that stores the result in one transaction never half-imports a feed.

Modes come from ``routes.route_type``: subway/metro (1), monorail (12) and the extended urban
railway types 400-405 are "metro"; bus (3), trolleybus (11) and the extended bus and
trolleybus types 700-716 and 800 are "bus". Other routes (tram, rail, ferry, ...) are skipped
and named in ``ParsedFeed.warnings``.

Each route becomes one ``Line`` per distinct stop sequence of its trips (a pattern: one per
direction and variant), with the cumulative distance of each stop in whole metres from the
pattern's first stop, taken from the first of these that the pattern's trips provide:

1. ``stop_times.shape_dist_traveled`` on every stop of a trip. GTFS leaves its unit to the
   producer, so the unit is detected per trip from the ratio ``r`` of the trip's total
   shape_dist_traveled to the great-circle length along its stops: metres when
   ``MIN_DETOUR <= r <= MAX_DETOUR``, kilometres when that holds for ``r * 1000``; any other
   ratio rejects the feed (see the two constants for why the window is where it is).
2. ``shapes.txt`` for a trip with a ``shape_id``: each stop is matched to a nearby point of
   the shape, in stop order, and distances run along the shape (great-circle between shape
   points). A stop with no shape point within ``MAX_STOP_OFFSET_M`` (in order) makes the
   shape untrustworthy for that pattern: it falls back to 3, with a warning.
3. Otherwise great-circle distances between consecutive stops (an under-estimate, never an
   over-estimate, which is the safe side for crediting).
"""

from carbon_credits.networks.gtfs.files import GtfsError
from carbon_credits.networks.gtfs.parse import ParsedFeed, parse_feed

__all__ = ["GtfsError", "ParsedFeed", "parse_feed"]
