"""A JSON format's table of fields and what is derived from it (``core/decode/json_fields``)."""

from __future__ import annotations

import msgspec
import pytest

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.decode import build_decoder, jsondecoder
from statuswatch.core.decode.envoy import envoy_table
from statuswatch.core.decode.generic_json import generic_table
from statuswatch.core.decode.json_fields import (
    FieldTable,
    JsonField,
    record_schema,
    record_values,
    scan_plan,
)
from statuswatch.core.decode.kong import KONG_FIELDS
from statuswatch.errors import ConfigError, DecodeError


def test_kong_scanner_fields_fold_the_username_into_the_app() -> None:
    plan = scan_plan(KONG_FIELDS)
    assert plan is not None
    assert plan.fields == [
        (("started_at",), "i"), (("response", "status"), "i"), (("service", "name"), "s"),
        (("route", "name"), "s"), (("consumer", "id"), "s"), (("consumer", "username"), "f"),
    ]
    assert plan.columns == [("i", 0), ("i", 1), ("s", 0), ("s", 1), ("s", 2), None]


def test_nginx_default_times_are_optional_dash_columns() -> None:
    plan = scan_plan(generic_table(FieldMap(service="upstream"), nginx=True))
    assert plan is not None
    assert [kind for _, kind in plan.fields] == ["d", "d", "d", "d", "S", "d"]


def test_an_event_table_has_no_status_and_the_scanner_reads_it() -> None:
    table = generic_table(FieldMap(timestamp="created_at", status=None, service="category"),
                          nginx=False)
    assert [f.role for f in table.fields] == ["timestamp", "service"]
    plan = scan_plan(table)
    assert plan is not None
    assert plan.fields == [(("created_at",), "S"), (("category",), "s")]  # no int column


def test_only_format_json_reads_events() -> None:
    with pytest.raises(ConfigError, match=r"decode\.fields\.status: null .* nginx-json"):
        generic_table(FieldMap(status=None), nginx=True)
    with pytest.raises(ValueError, match=r"decode\.fields\.status: null .* not envoy"):
        DecodeConfig(format="envoy", fields=FieldMap(status=None))


def test_a_path_read_by_two_roles_is_one_scanner_column() -> None:
    plan = scan_plan(envoy_table("upstream_cluster"))
    assert plan is not None
    assert [path for path, _ in plan.fields].count(("upstream_cluster",)) == 1
    assert plan.columns[2] == plan.columns[4]
    d = build_decoder(DecodeConfig(format="envoy", fields=FieldMap(app="upstream_cluster")))
    batch = d.decode([b'{"start_time": "2023-04-04T10:00:00Z", "response_code": 200,'
                      b' "upstream_cluster": "billing"}'] * 3)
    assert batch.dims["service"] == batch.dims["app"] == ["billing"] * 3
    batch.dims["app"][0] = "x"  # the two dimensions are separate lists
    assert batch.dims["service"][0] == "billing"


@pytest.mark.parametrize("fields", [
    FieldMap(service="upstream", route="upstream.name"),  # a path through another's leaf
    FieldMap(status="code", service="code"),  # one path read as int and as str
])
def test_tables_the_scanner_cannot_read_have_no_plan(fields: FieldMap) -> None:
    assert scan_plan(generic_table(fields, nginx=False)) is None
    assert build_decoder(DecodeConfig(format="json", fields=fields)).fast_path == "none"


def test_typed_schema_nulls_only_where_no_required_field_lies_below() -> None:
    d = build_decoder(DecodeConfig(format="kong"))
    ok = b'{"started_at": 1680600000123, "response": {"status": 200}, "service": null}'
    assert d.decode_one(ok).service == ""
    with pytest.raises(DecodeError) as info:
        d.decode_one(b'{"started_at": 1680600000123, "response": null}')
    assert (info.value.reason, info.value.detail) == ("wrong_type", "response")
    # untyped (format json): a null object on the path is an absent field
    g = build_decoder(DecodeConfig(format="json", fields=FieldMap(status="http.status")))
    with pytest.raises(DecodeError) as info:
        g.decode_one(b'{"time": "2023-04-04T10:00:00Z", "http": null}')
    assert (info.value.reason, info.value.detail) == ("missing_field", "http.status")


def test_record_values_reads_every_field_in_table_order() -> None:
    table = FieldTable((
        JsonField("status", ("a", "b"), "int"), JsonField("timestamp", ("t",), "int", "ms"),
        JsonField("app", ("a", "c"), "str"),
    ), typed=True)
    record = msgspec.json.decode(b'{"t": 5, "a": {"c": "x", "b": 201}, "z": [1]}',
                                 type=record_schema(table, "T"))
    quick, every_case = record_values(table)
    assert quick(record) == every_case(record) == (201, 5, "x")


def test_the_warning_flag_follows_the_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    d = build_decoder(DecodeConfig(format="kong"))
    monkeypatch.setattr(jsondecoder, "NATIVE_SCAN", False)
    assert d.scanner_missing and d.fast_path == "none"
    assert not build_decoder(DecodeConfig(format="combined")).scanner_missing
