"""Transit networks (GTFS import, demo network) and the catalog of factor and network versions."""
