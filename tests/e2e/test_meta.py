"""SPEC "Other endpoints": GET /operations, GET /health, /openapi.json, /docs."""
from __future__ import annotations

import re


from .helpers import ALL_OPERATIONS


def test_operations_lists_all_twelve_with_a_schema(server):
    r = server.get("/operations")
    assert r.status_code == 200
    ops = r.json()["operations"]
    names = [o["name"] for o in ops]
    assert sorted(names) == sorted(ALL_OPERATIONS)
    assert len(names) == 12
    for o in ops:
        schema = o["schema"]
        assert isinstance(schema, dict) and schema.get("type") == "object", o["name"]
        assert "op" in schema["properties"], o["name"]
        assert "op" in schema.get("required", []), o["name"]


def test_operation_schemas_describe_the_parameters(server):
    ops = {o["name"]: o["schema"] for o in server.get("/operations").json()["operations"]}
    expected = {
        "resize": {"scale", "width", "height", "fit"},
        "split": {"rows", "cols", "overlap"},
        "blur": {"kernel", "sigma"},
        "grayscale": set(),
        "sharpen": {"amount", "sigma", "threshold"},
        "threshold": {"method", "value", "block_size", "c"},
        "crop": {"x", "y", "width", "height", "top", "bottom", "left", "right"},
        "redact": {"x", "y", "width", "height", "mode", "color"},
        "rotate": {"angle"},
        "flip": {"axis"},
        "faces": {"action", "scale_factor", "min_neighbors", "min_size"},
        "encode": {"quality", "optimize", "progressive", "compression"},
    }
    for name, params in expected.items():
        assert set(ops[name]["properties"]) - {"op"} == params, name
    assert ops["encode"]["properties"]["quality"].get("maximum") == 100
    assert ops["split"]["properties"]["rows"].get("maximum") == 64


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok"
    assert h["executor"] == "process"
    assert h["workers"] == 2
    assert isinstance(h["version"], str) and h["version"]


def test_openapi_loads_and_lists_the_routes(server):
    r = server.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    for path in ("/process", "/items/", "/plan", "/operations", "/health"):
        assert path in spec["paths"], path


def test_docs_load_without_internet(server):
    """SPEC: /docs must load with no internet access (no CDN): every script and stylesheet from the server."""
    r = server.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', r.text)
    assets = [u for u in refs if u.endswith((".js", ".css"))]
    assert assets, "no script or stylesheet in /docs"
    external = [u for u in assets if u.startswith(("http://", "https://", "//")) and not u.startswith(server.url)]
    assert external == [], f"/docs needs the internet for {external}"
    for u in assets:
        assert server.get(u).status_code == 200, u
