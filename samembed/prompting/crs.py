"""The CRS of map-coordinate prompts, and their reprojection onto a scene's CRS.

RFC 7946 GeoJSON has no ``crs`` member: its coordinates are WGS 84 longitude, latitude
(section 4). The 2008 GeoJSON specification's ``crs`` member (``{"type": "name", "properties":
{"name": "urn:ogc:def:crs:EPSG::32632"}}``), still written by GDAL and QGIS for other CRSs, is
honoured. Coordinates from the command line and CSV files (``--map``) are in the scene's own CRS.
Reprojection is PROJ's, through rasterio (``rasterio.warp.transform``; a box through
``transform_bounds``: the bounds of its outline densified with 21 points a side, so the box holds
the whole reprojected box)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from ..errors import UsageError

#: RFC 7946 section 4: "The coordinate reference system for all GeoJSON coordinates is a geographic
#: coordinate reference system, using the World Geodetic System 1984 (WGS 84) datum, with longitude
#: and latitude units of decimal degrees."
RFC7946_CRS = "OGC:CRS84"


@dataclass(frozen=True)
class MapCRS:
    """The CRS prompts' map coordinates are in: ``name`` as given (an EPSG code, an OGC URN, WKT),
    and ``rule``, why it is assumed (shown in the output)."""

    name: str
    rule: str

    def describe(self) -> str:
        """``EPSG:32632 (the file's crs member)``: the CRS by its EPSG code where it has one."""
        return f"{crs_name(self.name)} ({self.rule})"


def _short(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


@lru_cache(maxsize=64)
def resolve(name: str):
    """The ``rasterio.crs.CRS`` of ``name``; one line if PROJ does not know it."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        with rasterio.Env():  # GDAL's and PROJ's complaints go to logging, not as lines on stderr
            return CRS.from_user_input(name)
    except (CRSError, ValueError, TypeError):
        raise UsageError(f"the CRS '{_short(name)}' is not known to PROJ; name it as an EPSG code "
                         "(urn:ogc:def:crs:EPSG::32632 or EPSG:32632) or give the features in WGS 84 longitude, "
                         "latitude without a crs member (RFC 7946)") from None


def crs_name(crs) -> str:
    """A short name of a scene's CRS (WKT, or a ``rasterio.crs.CRS``): its EPSG code where it has one."""
    crs = resolve(crs) if isinstance(crs, str) else crs
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else _short(crs.to_string())


def geojson_crs(data: dict, where: str) -> MapCRS:
    """The CRS of a GeoJSON object's coordinates: WGS 84 longitude, latitude without a ``crs``
    member (RFC 7946), else the CRS its ``crs`` member names (checked now, so an unknown one stops
    before anything runs). A null ``crs`` (an unknown CRS in the 2008 specification) or a linked
    one is refused in one line."""
    if "crs" not in data:
        return MapCRS(RFC7946_CRS, "RFC 7946 GeoJSON without a crs member: WGS 84 longitude, latitude")
    member = data["crs"]
    if member is None:
        raise UsageError(f"{where} says its CRS is unknown (\"crs\": null), so its coordinates cannot be placed on a "
                         "scene; give them in WGS 84 longitude, latitude without a crs member, or name the CRS")
    kind = member.get("type") if isinstance(member, dict) else None
    properties = member.get("properties") if isinstance(member, dict) else None
    name = None
    if isinstance(properties, dict):
        if kind == "name":
            name = properties.get("name")
        elif kind == "EPSG" and isinstance(properties.get("code"), int):  # the 2008 draft's form
            name = f"EPSG:{properties['code']}"
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where} has a crs member samembed cannot read ({str(member)[:80]}); name the CRS as "
                         '{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}}, or give WGS 84 '
                         "longitude, latitude without a crs member (RFC 7946)")
    resolve(name)
    return MapCRS(name, "the file's crs member")


def reproject(prompt, scene_crs: str):
    """``prompt`` (map coordinates in ``prompt.crs``) in the scene's CRS ``scene_crs`` (WKT), with
    ``crs`` cleared; one line where a coordinate has no place in it (outside its area of use)."""
    import rasterio
    from rasterio.warp import transform, transform_bounds

    source, target = resolve(prompt.crs.name), resolve(scene_crs)
    where = f"prompt {prompt.name}" if prompt.name else "the prompt"
    points, box = prompt.points, prompt.box
    try:
        with rasterio.Env():
            if points:
                xs, ys = transform(source, target, [p[0] for p in points], [p[1] for p in points])
                points = tuple(zip(map(float, xs), map(float, ys)))
            if box is not None:
                box = tuple(float(v) for v in transform_bounds(source, target, *box, densify_pts=21))
    except Exception as err:  # noqa: BLE001 (PROJ's errors come as several rasterio classes)
        raise UsageError(f"{where} cannot be reprojected from {crs_name(source)} to {crs_name(target)}: "
                         f"{str(err).splitlines()[0][:120]}") from None
    numbers = [v for p in points for v in p] + list(box or ())
    if not all(abs(v) < float("inf") for v in numbers):
        raise UsageError(f"{where} lies outside where {crs_name(target)} is defined (its coordinates in "
                         f"{crs_name(source)} have no place there); is the file's CRS the one it says?")
    if box is not None and not (box[0] < box[2] and box[1] != box[3]):
        raise UsageError(f"{where}'s box is empty once reprojected to {crs_name(target)}")
    return replace(prompt, points=points, box=box, crs=None)
