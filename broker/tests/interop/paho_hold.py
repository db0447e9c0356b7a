"""One MQTT 5 client that connects with a persistent session, subscribes, and
prints "connected", each message ("message PAYLOAD") and, when the server
closes it, "disconnected REASON" (decimal); it never reconnects.
Used by broker/tests/cluster_netns.rs to see which of two connections of one
client id survives a healed partition.
Usage: python3 paho_hold.py HOST CLIENT_ID TOPIC"""
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

host, client_id, topic = sys.argv[1:4]
done = False


def on_connect(client, userdata, flags, reason, properties):
    print("connected", flush=True)
    client.subscribe(topic, qos=1)


def on_message(client, userdata, message):
    print("message", message.payload.decode(), flush=True)


def on_disconnect(client, userdata, flags, reason, properties):
    global done
    print("disconnected", reason.value, flush=True)
    done = True


client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
client.on_connect = on_connect
client.on_message = on_message
client.on_disconnect = on_disconnect
properties = Properties(PacketTypes.CONNECT)
properties.SessionExpiryInterval = 300
client.connect(host, 1883, keepalive=30, clean_start=False, properties=properties)
# loop() never reconnects, unlike loop_forever().
while not done:
    client.loop(timeout=0.2)
