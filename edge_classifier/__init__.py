"""edge-classifier: an int8 TFLite image classification daemon that publishes over MQTT."""

__version__ = "0.1.0"
