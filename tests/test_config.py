"""Configuration loading: defaults, overrides, and exact messages for bad input."""

from pathlib import Path

import pytest

from edge_classifier.config.settings import load_config, mqtt_password
from edge_classifier.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_file():
    """Without a file: webcam 0, broker on localhost:1883, the default model."""
    config = load_config()
    assert (0, "localhost", 1883, None) == (
        config.source.uri,
        config.mqtt.host,
        config.mqtt.port,
        config.model.manifest,
    )


def test_overrides_are_typed_by_yaml():
    """--set values are parsed as YAML scalars: numbers, booleans, strings."""
    config = load_config(None, ("mqtt.port=1884", "source.loop=true", "source.uri=clip.mp4", "result.min_score=0.7"))
    assert (1884, True, "clip.mp4", 0.7) == (
        config.mqtt.port,
        config.source.loop,
        config.source.uri,
        config.result.min_score,
    )


def test_override_keeps_text_yaml_would_treat_as_comment():
    """A '#' in a value is kept as typed, not eaten as a YAML comment."""
    assert "till #3" == load_config(None, ("device_id=till #3",)).device_id


def test_override_of_a_text_key_keeps_the_text_as_typed():
    """A text key takes 0042 or yes as typed (YAML would make them 42 and true); null still means unset."""
    config = load_config(None, ("device_id=0042", "mqtt.host=10", "mqtt.username=yes", "mqtt.password_file=null",
                                "source.uri=2"))  # fmt: skip
    assert ("0042", "10", "yes", None, 2) == (
        config.device_id, config.mqtt.host, config.mqtt.username, config.mqtt.password_file, config.source.uri)  # fmt: skip


def test_config_is_immutable():
    """A loaded config cannot be changed at run time."""
    config = load_config()
    with pytest.raises(AttributeError):
        config.mqtt.port = 1  # type: ignore[misc]


def test_example_config_shows_the_defaults():
    """deploy/config.example.yaml is valid and every value in it is the built-in default."""
    assert load_config() == load_config(ROOT / "deploy" / "config.example.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("mqtt:\n  hots: x\n", "mqtt.hots: unknown key (known keys here: host, port, username, password_file, tls, "
         "ca_file, prefix, keepalive_s, connect_wait_s, reconnect_min_s, reconnect_max_s, protocol, max_offline_s, qos, publish_inference, inference_max_hz, metrics_interval_s)"),
        ("mqtt:\n  port: 70000\n", "mqtt.port: expected an integer from 1 to 65535, got 70000"),
        ("mqtt:\n  port: '1883'\n", "mqtt.port: expected an integer from 1 to 65535, got '1883'"),
        ("mqtt:\n  qos: 2\n", "mqtt.qos: expected an integer from 0 to 1, got 2"),
        ("source:\n  fps: 0\n", "source.fps: expected a number from 0.1 to 1000, got 0"),
        ("source:\n  uri: [1]\n", "source.uri: expected an integer or a string, got [1]"),
        ("source:\n  file_rate: fast\n", "source.file_rate: expected 'native' or 'max', got 'fast'"),
        ("source:\n  loop: yes please\n", "source.loop: expected true or false, got 'yes please'"),
        ("result:\n  min_score: 1.5\n", "result.min_score: expected a number from 0 to 1, got 1.5"),
        ("result:\n  vote_window: 2.5\n", "result.vote_window: expected an integer from 1 to 1000, got 2.5"),
        ("model:\n  crop: fit\n", "model.crop: expected 'center' or 'squash', got 'fit'"),
        ("model:\n  preprocessing:\n    mean: [1, x]\n",
         "model.preprocessing.mean: expected a non-empty list of finite numbers, got [1, 'x']"),
        ("model:\n  path: m.tflite\n", "model.labels: required with model.path (a model without a manifest needs a labels file)"),
        ("log_level: loud\n", "log_level: expected 'debug' or 'info' or 'warning' or 'error', got 'loud'"),
        ("mqtt: 5\n", "mqtt: expected a mapping of keys, got 5"),
        ("- a\n- b\n", "config file {path}: expected a mapping of keys at the top level"),
        ("mqtt:\n  host: a..b\n", "mqtt.host: 'a..b' is not a host name or IP address"),
        ("mqtt:\n  host: ''\n", "mqtt.host: '' is not a host name or IP address"),
        ("mqtt:\n  prefix: 'a/#'\n", "mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got 'a/#'"),
        ("mqtt:\n  reconnect_min_s: 10\n  reconnect_max_s: 5\n", "mqtt.reconnect_max_s: 5.0 is below mqtt.reconnect_min_s 10.0"),
        ("mqtt: [unclosed\n", "config file {path} is not valid YAML at line 2"),
        ("mqtt:\n  ca_file: /etc/ca.pem\n", "mqtt.ca_file: '/etc/ca.pem' is set but mqtt.tls is false"),
        ("mqtt:\n  reconnect_min_s: .nan\n", "mqtt.reconnect_min_s: expected a number from 0.1 to 3600, got nan"),
        ("result:\n  heartbeat_s: .inf\n", "result.heartbeat_s: expected a number from 0.1 to 86400, got inf"),
        ("model:\n  preprocessing:\n    mean: [.nan]\n", "model.preprocessing.mean: expected a non-empty list of finite numbers, got [nan]"),
        ("model:\n  preprocessing:\n    color_order: GRAY\n",
         "model.preprocessing.mean: color_order GRAY needs 1 value, got [127.5, 127.5, 127.5]"),
        ("model:\n  preprocessing:\n    std: [1, 0, 1]\n", "model.preprocessing.std: every value must be positive, got [1.0, 0.0, 1.0]"),
    ],
)  # fmt: skip
def test_bad_config_gives_exact_message(tmp_path, yaml_text, message):
    """Each bad config is refused with one message naming the dotted key and the value."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message.format(path=path) == str(error.value)


def test_missing_config_file_names_the_file(tmp_path):
    """A config path that does not exist is a ConfigError naming it."""
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "nope.yaml")
    assert f"cannot read config file {tmp_path / 'nope.yaml'}: No such file or directory" == str(error.value)


def test_password_comes_from_systemd_credentials(tmp_path, monkeypatch):
    """Without password_file, $CREDENTIALS_DIRECTORY/mqtt_password is read and stripped."""
    (tmp_path / "mqtt_password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert "s3cret" == mqtt_password(load_config().mqtt)


def test_empty_credential_means_no_password(tmp_path, monkeypatch):
    """The installer's empty mqtt_password file means anonymous, not an empty password."""
    (tmp_path / "mqtt_password").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert None is mqtt_password(load_config().mqtt)


def test_missing_password_file_is_a_config_error(tmp_path, monkeypatch):
    """A password_file that does not exist is named in the error."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = load_config(None, (f"mqtt.password_file={tmp_path / 'pw'}",))
    with pytest.raises(ConfigError, match="mqtt.password_file: .*pw' does not exist"):
        mqtt_password(config.mqtt)
