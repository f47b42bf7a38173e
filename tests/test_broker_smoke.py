"""The test broker itself works: a message published is received."""

import paho.mqtt.client as mqtt


def test_broker_delivers_a_retained_message(broker, subscriber):
    """A retained message published to the test broker reaches the subscriber."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish("t/x", "hello", qos=1, retain=True).wait_for_publish(5)
    message = subscriber.wait_for(lambda m: m.topic == "t/x", timeout=10)
    client.disconnect()
    client.loop_stop()
    assert "hello" == message.payload
