"""Records inside an envelope (``decode.envelope``): behind a syslog header, or in a string
field of a shipper's JSON event. The line decodes exactly as the bare line does; nothing
else is touched; input in an envelope the configuration does not name is named in the
mostly-invalid verdict."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, load_settings
from statuswatch.core.decode import build_decoder
from statuswatch.core.decode.envelope import json_field, syslog_header_length, syslog_message
from statuswatch.core.rejects import RejectTracker, reading_hint
from statuswatch.errors import ConfigError
from tests.data import apache_lines
from tests.unit.decode_samples import CONFIGS, batch_outcomes, outcomes, realistic_batch

LINE = b'{"time_local":"06/Dec/2026:05:30:01 +0000","status":"403"}'

#: What real shippers put before a line, and what they send it through.
HEADERS = {
    "nginx access_log syslog: (RFC 3164)": b"<190>Dec  6 05:30:01 web-1 nginx: ",
    "RFC 3164 without hostname (nginx nohostname)": b"<190>Dec 16 05:30:01 nginx: ",
    "RFC 3164 without priority": b"Dec  6 05:30:01 web-1 nginx: ",
    "rsyslog omkafka, RSYSLOG_FileFormat": b"2026-12-06T05:30:01.123456+00:00 web-1 nginx: ",
    "syslog-ng kafka, $ISODATE $HOST $MSGHDR": b"2026-12-06T05:30:01+00:00 web-1 nginx[812]: ",
    "RFC 3339 in UTC": b"2026-12-06T05:30:01Z web-1 kong: ",
    "RFC 5424, no structured data": b"<190>1 2026-12-06T05:30:01.123Z web-1 nginx 812 - - ",
    "RFC 5424, nil fields": b"<14>1 - - - - - - ",
    "RFC 5424, structured data": (
        b'<190>1 2026-12-06T05:30:01Z web-1 nginx - access [meta seq="1" x="a\\"]b"][id@1 y="2"] '
    ),
    "RFC 5424, BOM": b"<190>1 2026-12-06T05:30:01Z web-1 nginx - - - \xef\xbb\xbf",
}

#: Records that begin with no header and must stay whole.
UNFRAMED = [
    LINE,
    b' {"status": 200}',
    b'192.0.2.1 - - [06/Dec/2026:05:30:01 +0000] "GET / HTTP/1.1" 200 5',
    b"Dec 6 is not a header",
    b"2026-12-06T05:30:01Z",
    b"<190>not a header",
    b"",
]


@pytest.mark.parametrize("header", list(HEADERS.values()), ids=list(HEADERS))
def test_each_shippers_header_is_dropped(header: bytes):
    assert syslog_header_length(header + LINE) == len(header)
    assert syslog_message(header + LINE) == LINE


@pytest.mark.parametrize("value", UNFRAMED)
def test_a_record_without_a_header_stays_whole(value: bytes):
    assert syslog_header_length(value) == 0
    assert syslog_message(value) is value


@pytest.mark.parametrize("fmt", sorted(CONFIGS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), header=st.sampled_from(sorted(HEADERS.values())),
       framed=st.lists(st.booleans(), min_size=1, max_size=40))
def test_framed_records_decode_as_the_bare_records_do(
    fmt: str, seed: int, header: bytes, framed: list[bool]
):
    """Oracle: the format's own decoder on the bare records. Each record framed or not
    (a topic fed by several shippers), some of them invalid."""
    values, _ = realistic_batch(fmt, len(framed), seed)
    values = [v if i % 7 else v[: len(v) // 2] for i, v in enumerate(values)]  # some cut
    sent = [header + v if f else v for v, f in zip(values, framed, strict=True)]
    plain = build_decoder(CONFIGS[fmt])
    enveloped = build_decoder(CONFIGS[fmt].model_copy(update={"envelope": "syslog"}))
    expected = batch_outcomes(plain, values)
    assert batch_outcomes(enveloped, sent) == expected
    assert outcomes(enveloped, sent) == outcomes(plain, values)


def test_the_apache_log_behind_rsyslogs_header_decodes_whole():
    lines = apache_lines()
    header = b"2026-12-06T05:30:01.000000+00:00 www apache2: "
    cfg = DecodeConfig(format="combined")
    plain = build_decoder(cfg).decode(lines)
    framed = build_decoder(cfg.model_copy(update={"envelope": "syslog"})).decode(
        [header + x for x in lines])
    assert len(framed) == len(plain) == 10_000 and not framed.invalid
    assert framed.status.tolist() == plain.status.tolist()
    assert framed.ts_ms.tolist() == plain.ts_ms.tolist()  # the log's time, not the header's


def test_without_the_setting_framed_records_are_rejected_and_the_verdict_says_why():
    cfg = DecodeConfig(format="nginx-json")
    decoder = build_decoder(cfg)
    values = [HEADERS["nginx access_log syslog: (RFC 3164)"] + LINE] * 2000
    batch = decoder.decode(values)
    assert len(batch) == 0 and {r.reason for r in batch.invalid} == {"invalid_json"}
    tracker = RejectTracker(cfg.mostly_invalid)
    tracker.add(1_000, len(values), batch.invalid, values, 0, None)
    verdict = tracker.verdict(2_000, decoder, cfg)
    assert verdict.mostly_invalid
    assert verdict.hint.startswith("the records are nginx-json behind a syslog header: set "
                                   "decode.envelope: syslog, or have the shipper send")
    assert "decode.envelope: syslog" in verdict.message()


def test_with_the_setting_a_wrong_format_still_gets_the_formats_hint():
    cfg = DecodeConfig(format="kong", envelope="syslog")
    decoder = build_decoder(cfg)
    values = [HEADERS["rsyslog omkafka, RSYSLOG_FileFormat"] + b"not json"] * 2000
    tracker = RejectTracker(cfg.mostly_invalid)
    tracker.add(1_000, len(values), decoder.decode(values).invalid, values, 0, None)
    verdict = tracker.verdict(2_000, decoder, cfg)
    assert verdict.mostly_invalid and "check decode.format (now kong)" in verdict.hint


def test_an_unknown_envelope_names_the_key():
    with pytest.raises(ConfigError, match=r"decode\.envelope.*'none', 'syslog' or 'json'"):
        load_settings(decode={"envelope": "gelf"})


#: How shippers that tail a file wrap a line (``%s``), and the field that holds it.
WRAPPERS = {
    "Vector": ('{"file":"/var/log/nginx/access.log","host":"web-1","message":%s,'
               '"source_type":"file","timestamp":"2026-12-06T05:30:01.123Z"}', "message"),
    "Filebeat": ('{"@timestamp":"2026-12-06T05:30:01.123Z","@metadata":{"beat":"filebeat"},'
                 '"log":{"offset":1,"file":{"path":"/var/log/nginx/access.log"}},'
                 '"message":%s,"input":{"type":"log"},"host":{"name":"web-1"}}', "message"),
    "Fluent Bit": ('{"@timestamp":1765000201.123,"log":%s,"stream":"stdout"}', "log"),
    "Filebeat, event.original": ('{"event":{"original":%s,"dataset":"nginx.access"}}',
                                 "event.original"),
}


def wrapped(shape: str, line: bytes) -> bytes:
    return (WRAPPERS[shape][0] % json.dumps(line.decode())).encode()


@pytest.mark.parametrize("shape", sorted(WRAPPERS))
def test_each_shippers_event_gives_its_line(shape: str):
    for line in (LINE, UNFRAMED[2], "naïve \\ \" \t line".encode()):
        assert json_field(WRAPPERS[shape][1])(wrapped(shape, line)) == line


@pytest.mark.parametrize("value", [LINE, b"[1, 2]", b'{"message": 5}', b'{"message": null}',
                                   b'{"message": {"a": "b"}}', b"\xff", b'{"log": "x"}', b""])
def test_a_record_without_the_field_stays_whole(value: bytes):
    assert json_field("message")(value) is value


@pytest.mark.parametrize("fmt", sorted(CONFIGS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), shape=st.sampled_from(sorted(WRAPPERS)),
       wrap=st.lists(st.booleans(), min_size=1, max_size=40))
def test_records_in_json_events_decode_as_the_bare_records_do(
    fmt: str, seed: int, shape: str, wrap: list[bool]
):
    """Oracle: the format's own decoder on the bare records; each record wrapped or not,
    some cut short (invalid; one cut inside a UTF-8 sequence stays bare). A bare record
    with a string at the field is read as an envelope (an ECS log's own ``message``): it
    is always wrapped here."""
    values, _ = realistic_batch(fmt, len(wrap), seed)
    values = [v if i % 7 else v[: len(v) // 2] for i, v in enumerate(values)]
    unwrap = json_field(WRAPPERS[shape][1])

    def send(v: bytes, w: bool) -> bytes:
        try:
            return wrapped(shape, v) if w or unwrap(v) is not v else v
        except UnicodeDecodeError:
            return v

    sent = [send(v, w) for v, w in zip(values, wrap, strict=True)]
    cfg = CONFIGS[fmt].model_copy(update={"envelope": "json",
                                          "envelope_field": WRAPPERS[shape][1]})
    plain, enveloped = build_decoder(CONFIGS[fmt]), build_decoder(cfg)
    assert batch_outcomes(enveloped, sent) == batch_outcomes(plain, values)
    assert outcomes(enveloped, sent) == outcomes(plain, values)


@pytest.mark.parametrize(("fmt", "shape"), [("combined", "Fluent Bit"), ("nginx-json", "Vector"),
                                            ("combined", "Filebeat")])
def test_without_the_setting_the_verdict_names_the_field(fmt: str, shape: str):
    """A wrapped nginx JSON line lacks the time and status at the top (missing_field): the
    hint must be the envelope, not decode.fields.timestamp."""
    cfg = CONFIGS.get(fmt, DecodeConfig(format=fmt))
    line = UNFRAMED[2] if fmt == "combined" else realistic_batch(fmt, 1)[0][0]
    values = [wrapped(shape, line)] * 2000
    decoder = build_decoder(cfg)
    tracker = RejectTracker(cfg.mostly_invalid)
    tracker.add(1_000, len(values), decoder.decode(values).invalid, values, 0, None)
    verdict = tracker.verdict(2_000, decoder, cfg)
    field = WRAPPERS[shape][1]
    assert verdict.mostly_invalid
    assert verdict.hint.endswith(f"set decode.envelope: json and decode.envelope_field: {field}")


def test_the_hint_names_the_format_and_envelope_the_records_read_in():
    """Configured kong: a Vector event of a combined line names both settings; a bare
    combined line the format; a syslog-framed NGINX JSON line both; a record that reads
    in no way, or rejected for its own values, gets no such hint."""
    kong = DecodeConfig(format="kong")
    assert reading_hint("invalid_json", wrapped("Vector", UNFRAMED[2]), kong) == (
        "the records are combined in the JSON field message (as Fluent Bit, Vector or "
        "Filebeat send it): set decode.format: combined and decode.envelope: json and "
        "decode.envelope_field: message")
    assert reading_hint("invalid_json", UNFRAMED[2], kong) == (
        "the records are combined: set decode.format: combined")
    framed = HEADERS["RFC 3164 without priority"] + LINE
    assert reading_hint("invalid_json", framed, kong).startswith(
        "the records are nginx-json behind a syslog header: set decode.format: nginx-json "
        "and decode.envelope: syslog, or have the shipper send the line alone")
    kong_in_syslog = kong.model_copy(update={"envelope": "syslog"})
    assert reading_hint("invalid_json", UNFRAMED[2], kong_in_syslog) == (
        "the records are combined: set decode.format: combined and decode.envelope: none")
    assert reading_hint("invalid_json", b"not a log", kong) is None
    assert reading_hint("status_out_of_range", UNFRAMED[2], kong) is None
    # configured json envelope in the wrong field: the other field is named
    log_field = DecodeConfig(format="combined", envelope="json", envelope_field="message")
    assert reading_hint("unparseable_line", wrapped("Fluent Bit", UNFRAMED[2]), log_field) == (
        "the records are combined in the JSON field log (as Fluent Bit, Vector or Filebeat "
        "send it): set decode.envelope: json and decode.envelope_field: log")


def test_haproxy_lines_sent_through_syslog_are_named_as_such():
    """HAProxy logs to syslog: its lines read as kong name the format and the envelope."""
    line = (b'10.0.1.2:33317 [06/Dec/2026:05:30:01.655] api~ billing/s1 10/0/30/69/109 403 '
            b'2750 - - ---- 1/1/1/1/0 0/0 "GET /v1/charges HTTP/1.1"')
    kong = DecodeConfig(format="kong")
    assert reading_hint("invalid_json", line, kong) == (
        "the records are haproxy: set decode.format: haproxy")
    framed = b"<134>Dec  6 05:30:01 lb-1 haproxy[812]: " + line
    assert reading_hint("invalid_json", framed, kong).startswith(
        "the records are haproxy behind a syslog header: set decode.format: haproxy and "
        "decode.envelope: syslog")


def test_caddy_logs_read_with_another_format_are_named_as_such():
    """Caddy's JSON log read as kong, or as json with its default fields, is rejected
    for a missing field: the hint names the caddy format, in a Vector event too."""
    line = (b'{"level":"info","ts":1796607789.4139824,"logger":"http.log.access.log0",'
            b'"msg":"handled request","request":{"remote_ip":"127.0.0.1","host":'
            b'"api.example.com","uri":"/v1/charges"},"user_id":"","status":200}')
    for configured in (DecodeConfig(format="kong"), DecodeConfig(format="json")):
        assert reading_hint("missing_field", line, configured) == (
            "the records are caddy: set decode.format: caddy")
    assert reading_hint("missing_field", wrapped("Vector", line), DecodeConfig()) == (
        "the records are caddy in the JSON field message (as Fluent Bit, Vector or Filebeat "
        "send it): set decode.format: caddy and decode.envelope: json and "
        "decode.envelope_field: message")


def test_an_envelope_field_that_is_no_dotted_path_names_the_key():
    with pytest.raises(ConfigError, match=r"decode\.envelope_field"):
        load_settings(decode={"envelope": "json", "envelope_field": "a..b"})
