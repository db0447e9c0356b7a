"""Eclipse Paho (Python) against the broker: subscribe and publish at QoS 0/1/2
for MQTT 3.1, 3.1.1 and 5.0. Prints one line per version; exits 1 on a miss.
Usage: python3 paho_roundtrip.py PORT"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PORT = int(sys.argv[1])
WAIT_S = 10
failed = False
for proto, name in [(mqtt.MQTTv31, "3.1"), (mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5.0")]:
    got, done, subscribed = [], threading.Event(), threading.Event()

    def on_message(client, userdata, message):
        got.append((message.topic, message.payload.decode(), message.qos))
        if len(got) == 3:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-sub-{name}", protocol=proto)
    sub.on_message = on_message
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect("127.0.0.1", PORT)
    sub.loop_start()
    sub.subscribe("paho/#", qos=2)
    subscribed.wait(WAIT_S)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-pub-{name}", protocol=proto)
    pub.connect("127.0.0.1", PORT)
    pub.loop_start()
    for qos in (0, 1, 2):
        pub.publish(f"paho/{qos}", f"m{qos}", qos=qos).wait_for_publish(WAIT_S)
    done.wait(WAIT_S)
    expected = [(f"paho/{q}", f"m{q}", q) for q in (0, 1, 2)]
    ok = sorted(got) == expected
    failed |= not ok
    print(f"paho {name}: {'ok' if ok else f'expected {expected}, got {sorted(got)}'}")
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()
sys.exit(1 if failed else 0)
