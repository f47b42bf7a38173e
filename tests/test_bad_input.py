"""Bad input through the real command line: one line naming the key, exit 78, never a traceback."""

import os

import pytest

from helpers import DEFAULT_MANIFEST, FASHION_MANIFEST, SAMPLE_VIDEO, run_cli

MODEL = DEFAULT_MANIFEST.with_suffix(".tflite")
# A model file given alone (model.path) must have one output: the default model also gives its embedding.
ONE_OUTPUT_MODEL = FASHION_MANIFEST.with_suffix(".tflite")
LABELS = DEFAULT_MANIFEST.with_name(DEFAULT_MANIFEST.stem + ".labels.txt")
# The sample video, not camera 0: a machine without a camera would add a warning line.
VIDEO = f"source.uri={SAMPLE_VIDEO}"


def cut(char: str) -> str:
    """How a message shows a 60,000+ character value: its ends around '...'."""
    return f"'{char * 27}...{char * 28}'"


def case(name, yaml="", sets=(), message="", files=None, command="check-config", marks=()):
    """One row: a config file's text (or bytes), --set overrides, files to create under tmp, the expected line.

    In the message and every text, {tmp} stands for the test's directory and {cfg} for the config file;
    a message ending in '...' is a prefix of the line.
    """
    return pytest.param(command, yaml, sets, files or {}, message, id=name, marks=marks)


BAD = [
    # Existing validations: unknown keys, wrong types, out-of-range numbers, file-level problems.
    case("unknown-top-key", "colour: red\n",
         message="colour: unknown key (known keys here: device_id, log_level, state_dir, source, model, result, mqtt, outbox, "
                 "http, homeassistant, catalogue)"),
    case("unknown-nested-key", "mqtt:\n  hots: x\n", message="mqtt.hots: unknown key (known keys here: host, port..."),
    case("unknown-key-by-set", sets=("result.topk=3",),
         message="result.topk: unknown key (known keys here: top_k, vote_window, min_score, heartbeat_s)"),
    case("wrong-type", "mqtt:\n  port: nope\n", message="mqtt.port: expected an integer from 1 to 65535, got 'nope'"),
    case("out-of-range", "mqtt:\n  port: 70000\n", message="mqtt.port: expected an integer from 1 to 65535, got 70000"),
    case("out-of-range-by-set", sets=("result.top_k=0",), message="result.top_k: expected an integer from 1 to 100, got 0"),
    case("not-a-number", "source:\n  fps: .nan\n", message="source.fps: expected a number from 0.1 to 1000, got nan"),
    case("not-a-choice", "log_level: loud\n",
         message="log_level: expected 'debug' or 'info' or 'warning' or 'error', got 'loud'"),
    case("not-a-bool", "source:\n  loop: maybe\n", message="source.loop: expected true or false, got 'maybe'"),
    case("section-not-mapping", "mqtt: 5\n", message="mqtt: expected a mapping of keys, got 5"),
    case("top-level-list", "- a\n- b\n", message="config file {cfg}: expected a mapping of keys at the top level"),
    case("invalid-yaml", "mqtt: [unclosed\n", message="config file {cfg} is not valid YAML at line 2"),
    case("not-utf8", b"mqtt:\n  host: \xff\n", message="config file {cfg} is not UTF-8 text"),
    case("set-without-value", sets=("mqtt.port",),
         message="--set 'mqtt.port': expected KEY=VALUE, for example mqtt.host=broker.local"),
    case("reconnect-pair", "mqtt:\n  reconnect_min_s: 10\n  reconnect_max_s: 5\n",
         message="mqtt.reconnect_max_s: 5.0 is below mqtt.reconnect_min_s 10.0"),
    case("ca-file-without-tls", "mqtt:\n  ca_file: /etc/ca.pem\n",
         message="mqtt.ca_file: '/etc/ca.pem' is set but mqtt.tls is false"),
    case("path-without-labels", sets=("model.path=m.tflite",),
         message="model.labels: required with model.path (a model without a manifest needs a labels file)"),
    case("password-file-missing", sets=("mqtt.password_file={tmp}/nope",),
         message="mqtt.password_file: '{tmp}/nope' does not exist"),
    # 1. MQTT length limits (65,535 bytes in UTF-8), counted for topics with 200 bytes kept for names.
    case("prefix-too-long", "device_id: kiosk\nmqtt:\n  prefix: " + "p" * 70000 + "\n",
         message=f"mqtt.prefix: {cut('p')} is 70000 bytes long; topics <prefix>/<device>/<name> would need 70206 "
                 "bytes (70000 prefix, 5 device, 200 kept for names); MQTT allows at most 65535"),
    case("device-id-too-long-for-topics", "device_id: " + "d" * 65400 + "\n",
         message=f"device_id: {cut('d')} is 65400 bytes long; topics <prefix>/<device>/<name> would need 65616 bytes "
                 "(15 prefix, 65400 device, 200 kept for names); MQTT allows at most 65535"),
    case("device-id-too-long-for-client-id", "device_id: " + "d" * 65530 + "\n",
         message=f"device_id: {cut('d')} makes the client id 65546 bytes long; MQTT allows at most 65535"),
    case("username-too-long", "mqtt:\n  username: " + "u" * 65536 + "\n",
         message=f"mqtt.username: {cut('u')} is 65536 bytes long in UTF-8; MQTT allows at most 65535"),
    case("username-too-long-in-bytes", "mqtt:\n  username: " + "é" * 32768 + "\n",
         message=f"mqtt.username: {cut('é')} is 65536 bytes long in UTF-8; MQTT allows at most 65535"),
    case("password-too-long", sets=("mqtt.password_file={tmp}/pw",), files={"pw": b"x" * 65536},
         message="mqtt.password_file: the password in {tmp}/pw is 65536 bytes long in UTF-8; MQTT allows at most 65535"),
    # 2. Device ids that name nothing.
    case("device-id-punctuation", "device_id: '---'\n",
         message="device_id: '---' has no letter or digit to name the device by"),
    case("device-id-punctuation-by-set", sets=("device_id=###",),
         message="device_id: '###' has no letter or digit to name the device by", command="run"),
    # 3. Control characters and lone surrogates.
    case("device-id-nul", 'device_id: "a\\0b"\n',
         message=r"device_id: 'a\x00b' contains the control character U+0000, which MQTT does not allow"),
    case("prefix-tab", sets=("mqtt.prefix=shop\tfloor",),
         message=r"mqtt.prefix: 'shop\tfloor' contains the control character U+0009, which MQTT does not allow"),
    case("username-escape", sets=("mqtt.username=ad\x1bmin",),
         message=r"mqtt.username: 'ad\x1bmin' contains the control character U+001B, which MQTT does not allow"),
    case("username-c1", 'mqtt:\n  username: "ad\\x85min"\n',
         message=r"mqtt.username: 'ad\x85min' contains the control character U+0085, which MQTT does not allow"),
    case("device-id-surrogate", 'device_id: "a\\uD800b"\n',
         message=r"device_id: 'a\ud800b' contains a lone surrogate (U+D800), which is not valid UTF-8"),
    case("device-id-surrogate-by-argv", sets=("device_id=a\udcffb",), command="run",
         message=r"device_id: 'a\udcffb' contains a lone surrogate (U+DCFF), which is not valid UTF-8"),
    case("prefix-surrogate", 'mqtt:\n  prefix: "shop\\uDC00"\n',
         message=r"mqtt.prefix: 'shop\udc00' contains a lone surrogate (U+DC00), which is not valid UTF-8"),
    case("password-control", sets=("mqtt.password_file={tmp}/pw",), files={"pw": b"pa\x07ss\n"},
         message="mqtt.password_file: the password in {tmp}/pw contains the control character U+0007, which MQTT does "
                 "not allow"),
    case("prefix-wildcard", "mqtt:\n  prefix: 'a/#'\n",
         message="mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got 'a/#'"),
    case("prefix-leading-slash", "mqtt:\n  prefix: /shop\n",
         message="mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got '/shop'"),
    case("prefix-empty-level", "mqtt:\n  prefix: shop//floor\n",
         message="mqtt.prefix: 'shop//floor' has an empty topic level ('//')"),
    case("prefix-dollar", "mqtt:\n  prefix: $SYS/shop\n",
         message="mqtt.prefix: '$SYS/shop' starts with '$', which brokers keep for themselves ($SYS)"),
    # 4. Input that used to end in a traceback.
    case("deep-flow-sequence", "mqtt: " + "[" * 10000 + "]" * 10000 + "\n",
         message="config file {cfg} nests deeper than 64 levels (at line 1)"),
    case("deep-flow-mapping", "{a: " * 10000 + "}" * 10000 + "\n",
         message="config file {cfg} nests deeper than 64 levels (at line 1)", command="run"),
    case("deep-set-value", sets=("mqtt.host=" + "[" * 10000 + "]" * 10000,),
         message="--set mqtt.host nests deeper than 64 levels (at line 1)"),
    # 5. Broker hosts that can never work.
    case("host-mqtt-url", sets=("mqtt.host=mqtt://127.0.0.1",),
         message="mqtt.host: 'mqtt://127.0.0.1' is a URL; give the host name alone (127.0.0.1) and the port as mqtt.port"),
    case("host-http-url", sets=("mqtt.host=http://127.0.0.1",), command="run",
         message="mqtt.host: 'http://127.0.0.1' is a URL; give the host name alone (127.0.0.1) and the port as mqtt.port"),
    case("host-mqtts-url-with-port", "mqtt:\n  host: mqtts://broker.local:8883\n",
         message="mqtt.host: 'mqtts://broker.local:8883' is a URL; give the host name alone (broker.local) and the port "
                 "as mqtt.port (8883), with mqtt.tls: true"),
    case("host-with-port", sets=("mqtt.host=127.0.0.1:18870",),
         message="mqtt.host: '127.0.0.1:18870' includes a port; use mqtt.host: 127.0.0.1 and mqtt.port: 18870"),
    case("host-bad-ipv4", sets=("mqtt.host=256.1.1.1",), message="mqtt.host: '256.1.1.1' is not a valid IPv4 address"),
    case("host-ipv6-with-port", "mqtt:\n  host: '[::1]:1883'\n",
         message="mqtt.host: '[::1]:1883' includes a port; use mqtt.host: ::1 and mqtt.port: 1883"),
    case("host-ipv6-brackets", "mqtt:\n  host: '[::1]'\n",
         message="mqtt.host: '[::1]' has brackets; give the IPv6 address without them (::1)"),
    case("host-bad-ipv6", "mqtt:\n  host: '1::2::3'\n", message="mqtt.host: '1::2::3' is not a valid IPv6 address"),
    case("host-space", sets=("mqtt.host=my broker",), message="mqtt.host: 'my broker' is not a host name or IP address"),
    case("host-empty-label", "mqtt:\n  host: a..b\n", message="mqtt.host: 'a..b' is not a host name or IP address"),
    # 6. Surprises: a '#' comment, duplicate keys, a password file that is no file, the backoff pair.
    case("hash-read-as-comment", "device_id: #3\n",
         message="device_id: expected a string, got nothing: YAML read the value as empty ('#' starts a comment; quote "
                 "a value that begins with it)"),
    case("duplicate-section", "mqtt:\n  host: a\nmqtt:\n  port: 1884\n",
         message="mqtt: given twice in config file {cfg} (lines 1 and 3); say it once", command="run"),
    case("duplicate-key", "mqtt:\n  host: a\n  port: 1884\n  host: b\n",
         message="mqtt.host: given twice in config file {cfg} (lines 2 and 4); say it once"),
    case("duplicate-key-in-set", sets=("mqtt={host: a, host: b}",),
         message="mqtt.host: given twice in --set mqtt (line 1); say it once"),
    case("password-file-directory", sets=("mqtt.password_file={tmp}/pwdir",), files={"pwdir": None},
         message="mqtt.password_file: '{tmp}/pwdir' is a directory"),
    case("password-file-directory-run", sets=("mqtt.password_file={tmp}/pwdir", VIDEO), files={"pwdir": None},
         message="mqtt.password_file: '{tmp}/pwdir' is a directory", command="run"),
    case("password-file-fifo", sets=("mqtt.password_file={tmp}/pwfifo",), files={"pwfifo": "fifo"},
         message="mqtt.password_file: '{tmp}/pwfifo' is not a regular file"),
    case("reopen-backoff-pair", "source:\n  reopen_backoff_s: 5\n  reopen_backoff_max_s: 1\n",
         message="source.reopen_backoff_max_s: 1.0 is below source.reopen_backoff_s 5.0"),
    # Bad models: found by check-config, which loads the model as run does.
    case("manifest-is-directory", sets=("model.manifest={tmp}/model-dir", VIDEO), files={"model-dir": None},
         message="model.manifest: '{tmp}/model-dir' is a directory, not a manifest (.json) file"),
    case("empty-tflite", sets=("model.path={tmp}/empty.tflite", f"model.labels={LABELS}", VIDEO),
         files={"empty.tflite": b""}, message="model.path: model file {tmp}/empty.tflite is not a loadable TFLite model: ..."),
    case("truncated-tflite", sets=("model.path={tmp}/cut.tflite", f"model.labels={LABELS}", VIDEO),
         files={"cut.tflite": MODEL.read_bytes()[:5000]},
         message="model.path: model file {tmp}/cut.tflite is not a loadable TFLite model: The model is not a valid Flatbuffer buffer"),
    case("labels-wrong-count", sets=(f"model.path={ONE_OUTPUT_MODEL}", "model.labels={tmp}/three.txt", VIDEO),
         files={"three.txt": b"a\nb\nc\n"}, message="model.labels: '{tmp}/three.txt' has 3 labels but the model outputs 10 classes"),
]  # fmt: skip


def make_files(tmp_path, files):
    """Create each named file (bytes), directory (None) or FIFO ('fifo') under tmp_path."""
    for name, content in files.items():
        path = tmp_path / name
        if content is None:
            path.mkdir()
        elif content == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(content)


def cli_args(command, tmp_path, yaml, sets):
    """The config file written and the argument list for `check-config FILE` or `run -c FILE`."""
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(yaml if isinstance(yaml, bytes) else yaml.replace("{tmp}", str(tmp_path)).encode("utf-8"))
    overrides = [arg for setting in sets for arg in ("--set", setting.replace("{tmp}", str(tmp_path)))]
    if command == "run":
        return cfg, ["run", "-c", str(cfg), "--set", "mqtt.connect_wait_s=0", *overrides]
    return cfg, ["check-config", str(cfg), *overrides]


@pytest.mark.parametrize(("command", "yaml", "sets", "files", "message"), BAD)
def test_bad_input_is_one_line_naming_the_key_and_exit_78(tmp_path, command, yaml, sets, files, message):
    """Each bad input ends in exit 78 and, as the last stderr line, the expected message; no traceback."""
    make_files(tmp_path, files)
    cfg, args = cli_args(command, tmp_path, yaml, sets)
    out = run_cli(*args)
    lines = out.stderr.splitlines()
    expected = "error: " + message.replace("{tmp}", str(tmp_path)).replace("{cfg}", str(cfg))
    last = lines[-1] if lines else ""
    if expected.endswith("..."):
        expected, last = expected[:-3], last[: len(expected) - 3]
    # check-config prints nothing else; run may have logged its start-up (the model's self-test) first.
    one_line = len(lines) == 1 or command == "run"
    assert (78, expected, True, False) == (out.returncode, last, one_line, "Traceback" in out.stderr), out.stderr


@pytest.mark.parametrize(
    ("files", "sets"),
    [
        ({"model-dir": None}, ("model.manifest={tmp}/model-dir",)),
        ({"empty.tflite": b""}, ("model.path={tmp}/empty.tflite", f"model.labels={LABELS}")),
        ({"cut.tflite": MODEL.read_bytes()[:5000]}, ("model.path={tmp}/cut.tflite", f"model.labels={LABELS}")),
        ({"three.txt": b"a\nb\nc\n"}, (f"model.path={ONE_OUTPUT_MODEL}", "model.labels={tmp}/three.txt")),
    ],
    ids=["manifest-is-directory", "empty-tflite", "truncated-tflite", "labels-wrong-count"],
)
def test_bad_model_is_one_line_and_exit_78(tmp_path, files, sets):
    """A bad model file, manifest or labels file is refused by check-config in one line with exit 78."""
    make_files(tmp_path, files)
    _, args = cli_args("check-config", tmp_path, "", (*sets, VIDEO))
    out = run_cli(*args)
    assert (78, 1, True, False) == (
        out.returncode, len(out.stderr.splitlines()), out.stderr.startswith("error: "), "Traceback" in out.stderr)  # fmt: skip


@pytest.mark.parametrize(
    ("yaml", "sets", "shown"),
    [
        ("mqtt:\n  host: '::1'\n", (), "broker ::1:1883)"),
        ("", ("mqtt.host=fe80::1%eth0",), "broker fe80::1%eth0:1883)"),
        ("", ("mqtt.host=broker.local",), "broker broker.local:1883)"),
        ("", ("mqtt.host=my-broker",), "broker my-broker:1883)"),
        ("", ("mqtt.host=127.0.0.1",), "broker 127.0.0.1:1883)"),
        ("device_id: кухня\n", (), "(device 07c47309,"),
        ("device_id: 厨房\n", (), "(device 4ae988a2,"),
        ("device_id: Café 2\n", (), "(device cafe-2-a13b96f8,"),
        ("device_id: 'Till #3'\n", (), "(device till-3,"),
        ("", ("device_id=#3",), "(device 3,"),
        ("mqtt:\n  prefix: shop/\n", ("device_id=kiosk-1",), "(device kiosk-1,"),
        ("mqtt:\n  <<: {host: a.local}\n  host: b.local\n", (), "broker b.local:1883)"),
    ],
)
def test_valid_edge_cases_are_accepted(tmp_path, yaml, sets, shown):
    """IPv6 literals, host names, unicode device ids, a '#' typed on the command line and a trailing '/' pass."""
    _, args = cli_args("check-config", tmp_path, yaml, (*sets, VIDEO))
    out = run_cli(*args)
    assert (0, True) == (out.returncode, shown in out.stdout), out.stdout + out.stderr


def test_run_takes_a_device_id_with_hash_as_typed(tmp_path):
    """`run --device-id '#3'` is the id '#3' (device 3): the error that stops it is the missing video, not the id."""
    video = tmp_path / "nope.mp4"
    out = run_cli("run", "--device-id", "#3", "--source", str(video), "--set", "mqtt.connect_wait_s=0")
    assert (78, f"error: source.uri: video file '{video}' does not exist") == (
        out.returncode,
        out.stderr.splitlines()[-1],
    )
