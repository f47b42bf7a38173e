"""Configuration hardening: MQTT limits, device ids, control characters, strict YAML, broker hosts, password files."""

import os
import time
import unicodedata

import pytest

from edge_classifier.config.settings import load_config, mqtt_password
from edge_classifier.config.yaml_reading import parse_yaml
from edge_classifier.errors import ConfigError
from edge_classifier.mqtt.topics import Topics, sanitize_device_id


def refusal(*overrides):
    """The ConfigError message load_config gives for these --set overrides."""
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    return str(error.value)


def test_ids_in_other_scripts_stay_apart_and_stable():
    """Cyrillic and CJK ids, which have no ASCII letters, get distinct ids that are the same on every start."""
    assert ["07c47309", "4ae988a2", "07c47309"] == [sanitize_device_id(i) for i in ("кухня", "厨房", " Кухня ")]


def test_accents_are_dropped_and_the_id_marked_as_changed():
    """Accents go (é → e) and a hash keeps 'Café' apart from 'Cafe'; composed and decomposed forms are one id."""
    nfd = unicodedata.normalize("NFD", "Café")
    assert ["cafe-850f7dc4", "cafe-850f7dc4", "cafe"] == [sanitize_device_id(i) for i in ("Café", nfd, "Cafe")]


def test_clean_and_ascii_ids_keep_their_names():
    """ASCII ids keep the names they always had: existing topics do not move."""
    assert ["kiosk-1", "till-3", "smorrebrod-64e3c3f0"] == [
        sanitize_device_id(i) for i in ("kiosk-1", "Till #3", "Smørrebrød")
    ]


@pytest.mark.parametrize("device_id", ["---", "###", "🍕", "_"])
def test_device_id_without_letter_or_digit_is_refused(device_id):
    """An id that names nothing is refused instead of becoming a name every such device shares."""
    assert f"device_id: {device_id!r} has no letter or digit to name the device by" == refusal(f"device_id={device_id}")


def test_host_name_used_as_device_id_is_checked_too(monkeypatch):
    """Without device_id the host name is the id, and is refused alike when it names nothing."""
    monkeypatch.setattr("socket.gethostname", lambda: "--")
    assert "device_id: is not set and the host name '--' has no letter or digit to name the device by" == refusal()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("mqtt.prefix=p", "device_id=" + "d" * 65333), None),
        (("mqtt.prefix=p", "device_id=" + "d" * 65334),
         "device_id: '" + "d" * 27 + "..." + "d" * 28 + "' is 65334 bytes long; topics <prefix>/<device>/<name> would "
         "need 65536 bytes (1 prefix, 65334 device, 200 kept for names); MQTT allows at most 65535"),
        (("mqtt.prefix=p", "device_id=" + "d" * 65520),
         "device_id: '" + "d" * 27 + "..." + "d" * 28 + "' makes the client id 65536 bytes long; MQTT allows at most "
         "65535"),
        (("device_id=k", "mqtt.prefix=" + "p" * 65333), None),
        (("device_id=k", "mqtt.prefix=" + "p" * 65334),
         "mqtt.prefix: '" + "p" * 27 + "..." + "p" * 28 + "' is 65334 bytes long; topics <prefix>/<device>/<name> "
         "would need 65536 bytes (65334 prefix, 1 device, 200 kept for names); MQTT allows at most 65535"),
        (("mqtt.username=" + "u" * 65535,), None),
        (("mqtt.username=" + "€" * 21846,),
         "mqtt.username: '" + "€" * 27 + "..." + "€" * 28 + "' is 65538 bytes long in UTF-8; MQTT allows at most 65535"),
    ],
)  # fmt: skip
def test_mqtt_lengths_are_checked_in_bytes_at_the_limit(overrides, message):
    """Topics (with 200 bytes kept for names), client id and user name fit MQTT's 65,535 bytes, or are refused."""
    if message is None:
        load_config(None, overrides)
    else:
        assert message == refusal(*overrides)


@pytest.mark.parametrize(
    ("char", "problem"),
    [("\x00", "the control character U+0000, which MQTT does not allow"),
     ("\x1f", "the control character U+001F, which MQTT does not allow"),
     ("\x7f", "the control character U+007F, which MQTT does not allow"),
     ("\x9f", "the control character U+009F, which MQTT does not allow"),
     ("\ud800", "a lone surrogate (U+D800), which is not valid UTF-8"),
     ("\udfff", "a lone surrogate (U+DFFF), which is not valid UTF-8")],
)  # fmt: skip
@pytest.mark.parametrize("key", ["device_id", "mqtt.prefix", "mqtt.username", "mqtt.host"])
def test_control_characters_and_lone_surrogates_are_refused(key, char, problem):
    """C0/C1 controls and lone surrogates in any text MQTT carries are refused, naming the key."""
    value = f"a{char}b"
    assert f"{key}: {value!r} contains {problem}" == refusal(f"{key}={value}")


def test_printable_unicode_is_accepted():
    """A no-break space or an emoji is text MQTT carries: only controls and surrogates are refused."""
    config = load_config(None, ("mqtt.username=ad\xa0min 🍕", "mqtt.prefix=shöp/🍕", "device_id=kiosk"))
    assert "shöp/🍕/kiosk/status" == Topics(config.mqtt.prefix, config.device).status


def test_trailing_slash_in_prefix_makes_no_empty_level():
    """A trailing '/' is accepted: topics are built without it, so no empty level is published."""
    config = load_config(None, ("mqtt.prefix=shop/", "device_id=kiosk"))
    assert "shop/kiosk/status" == Topics(config.mqtt.prefix, config.device).status


@pytest.mark.parametrize(
    "host",
    ["localhost", "broker.local", "broker.local.", "my-broker", "my_broker", "::1", "2001:db8::1", "fe80::1%eth0",
     "127.0.0.1", "127.1", "10", "brökér.local"],
)  # fmt: skip
def test_usable_broker_hosts_are_accepted(host):
    """Host names, IPv4 (the resolver's short forms too) and IPv6 literals pass."""
    assert host == load_config(None, (f"mqtt.host={host}",)).mqtt.host


@pytest.mark.parametrize(
    ("host", "message"),
    [("mqtt://", "'mqtt://' is a URL; give the host name alone and the port as mqtt.port"),
     ("ssl://b.local", "'ssl://b.local' is a URL; give the host name alone (b.local) and the port as mqtt.port, with "
                       "mqtt.tls: true"),
     ("http://[::1]:8080", "'http://[::1]:8080' is a URL; give the host name alone (::1) and the port as mqtt.port (8080)"),
     ("broker.local:x", "'broker.local:x' is not a host name or IP address"),
     ("1.2.3.4.5", "'1.2.3.4.5' is not a valid IPv4 address"),
     ("user@broker", "'user@broker' is not a host name or IP address"),
     ("broker/mqtt", "'broker/mqtt' is not a host name or IP address")],
)  # fmt: skip
def test_hosts_that_can_never_work_are_refused(host, message):
    """A URL, a port, an impossible address or a character no host name has is refused, saying what to give."""
    assert f"mqtt.host: {message}" == refusal(f"mqtt.host={host}")


def test_reopen_backoff_pair_is_checked_like_the_mqtt_pair():
    """source.reopen_backoff_max_s may equal but not be below source.reopen_backoff_s."""
    load_config(None, ("source.reopen_backoff_s=2", "source.reopen_backoff_max_s=2"))
    assert "source.reopen_backoff_max_s: 1.0 is below source.reopen_backoff_s 2.0" == refusal(
        "source.reopen_backoff_s=2", "source.reopen_backoff_max_s=1"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [("device_id=#3", ("#3", "3")), ("device_id=---", None), ("mqtt.username=null", None), ("mqtt.username=~", None)],
)
def test_set_value_yaml_would_read_as_null_is_taken_as_typed(override, expected):
    """`--set device_id=#3` is the text '#3' (YAML alone reads a comment); null and ~ still mean unset."""
    if override.startswith("device_id=---"):
        assert "device_id: '---' has no letter or digit to name the device by" == refusal(override)
        return
    config = load_config(None, (override,))
    actual = (config.device_id, config.device) if override.startswith("device_id") else config.mqtt.username
    assert expected == actual


def test_set_of_a_number_key_to_a_comment_says_what_it_got():
    """A '#' value for a number key is shown as typed, not as None."""
    assert "mqtt.port: expected an integer from 1 to 65535, got '#3'" == refusal("mqtt.port=#3")


def test_depth_limit_is_exact():
    """64 levels of YAML are read; 65 are one message, not a RecursionError."""
    assert 64 == str(parse_yaml("[" * 64 + "]" * 64, "x")).count("[")
    with pytest.raises(ConfigError, match=r"^x nests deeper than 64 levels \(at line 1\)$"):
        parse_yaml("[" * 65 + "]" * 65, "x")


def test_merge_keys_may_be_overridden_but_keys_not_repeated():
    """A `<<` merge may be overridden (that is what it is for); a key written twice in a nested list is refused."""
    assert {"mqtt": {"host": "b"}} == parse_yaml("mqtt:\n  <<: {host: a}\n  host: b\n", "f")
    with pytest.raises(ConfigError, match=r"^a.b.c: given twice in f \(lines 4 and 5\); say it once$"):
        parse_yaml("a:\n  b:\n    - x: 1\n      c: 1\n      c: 2\n", "f")


def test_value_built_from_aliases_is_shown_short():
    """A wrong value built from YAML aliases (millions of elements) gives a short message at once."""
    levels = ["&l0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 7)]
    started = time.monotonic()
    with pytest.raises(ConfigError) as error:
        load_config(None, (f"source.uri=[{', '.join(levels)}]",))
    assert (True, True) == (len(str(error.value)) < 400, time.monotonic() - started < 5), str(error.value)[:300]


def test_long_wrong_value_is_shown_short():
    """A 70,000-character value of the wrong kind is shown by its ends."""
    assert (
        "log_level: expected 'debug' or 'info' or 'warning' or 'error', got '" + "x" * 27 + "..." + "x" * 28 + "'"
        == (refusal("log_level=" + "x" * 70000))
    )


@pytest.fixture
def no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def password_refusal(path):
    """The ConfigError message mqtt_password gives for this password_file."""
    with pytest.raises(ConfigError) as error:
        mqtt_password(load_config(None, (f"mqtt.password_file={path}",)).mqtt)
    return str(error.value)


def test_password_at_the_limit_is_read_and_over_it_refused_without_showing_it(tmp_path, no_credentials):
    """65,535 bytes of password are fine; one more is refused, and the message never contains the password."""
    path = tmp_path / "pw"
    path.write_text("s" * 65535 + "\n")
    assert 65535 == len(mqtt_password(load_config(None, (f"mqtt.password_file={path}",)).mqtt) or "")
    path.write_text("s" * 65536)
    assert f"mqtt.password_file: the password in {path} is 65536 bytes long in UTF-8; MQTT allows at most 65535" == (
        password_refusal(path)
    )


def test_password_with_control_character_is_refused_without_showing_it(tmp_path, no_credentials):
    """A control character inside the password is refused; the message names the file, not the password."""
    path = tmp_path / "pw"
    path.write_text("sec\x00ret")
    assert f"mqtt.password_file: the password in {path} contains the control character U+0000, which MQTT does not " \
           "allow" == password_refusal(path)  # fmt: skip


def test_password_file_that_is_no_regular_file_says_what_it_is(tmp_path, no_credentials):
    """A directory, a FIFO (never opened: reading would block) and a device are named for what they are."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    actual = [password_refusal(p) for p in (tmp_path / "dir", tmp_path / "fifo", "/dev/null")]
    assert [f"mqtt.password_file: '{tmp_path / 'dir'}' is a directory",
            f"mqtt.password_file: '{tmp_path / 'fifo'}' is not a regular file",
            "mqtt.password_file: '/dev/null' is not a regular file"] == actual  # fmt: skip


def test_systemd_credential_that_is_a_directory_is_named(tmp_path, monkeypatch):
    """$CREDENTIALS_DIRECTORY/mqtt_password is checked the same way as password_file."""
    (tmp_path / "mqtt_password").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError) as error:
        mqtt_password(load_config().mqtt)
    assert f"mqtt.password_file: '{tmp_path / 'mqtt_password'}' is a directory" == str(error.value)
