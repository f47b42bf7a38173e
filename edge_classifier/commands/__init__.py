"""Commands over MQTT (`<prefix>/<device>/cmd/<name>`), each answered with an acknowledgement."""
