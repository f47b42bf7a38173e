"""Home Assistant MQTT discovery: the daemon's entities appear in Home Assistant without YAML."""
