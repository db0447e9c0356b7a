"""Eclipse Paho (Python) over WebSocket (transport="websockets", path /mqtt):
subscribe and publish at QoS 0/1/2 with MQTT 3.1.1 and 5.0. Prints one line
per version; exits 1 on a miss.
Usage: python3 paho_websocket.py WS_PORT"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PORT = int(sys.argv[1])
WAIT_S = 10
failed = False


def client(name, proto):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=proto, transport="websockets")
    c.ws_set_options(path="/mqtt")
    return c


for proto, name in [(mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5.0")]:
    got, done, subscribed = [], threading.Event(), threading.Event()

    def on_message(_client, _userdata, message):
        got.append((message.topic, message.payload.decode(), message.qos))
        if len(got) == 3:
            done.set()

    sub = client(f"paho-ws-sub-{name}", proto)
    sub.on_message = on_message
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect("127.0.0.1", PORT)
    sub.loop_start()
    sub.subscribe("paho-ws/#", qos=2)
    subscribed.wait(WAIT_S)
    pub = client(f"paho-ws-pub-{name}", proto)
    pub.connect("127.0.0.1", PORT)
    pub.loop_start()
    for qos in (0, 1, 2):
        pub.publish(f"paho-ws/{qos}", f"w{qos}", qos=qos).wait_for_publish(WAIT_S)
    done.wait(WAIT_S)
    expected = [(f"paho-ws/{q}", f"w{q}", q) for q in (0, 1, 2)]
    ok = sorted(got) == expected
    failed |= not ok
    print(f"paho websocket {name}: {'ok' if ok else f'expected {expected}, got {sorted(got)}'}")
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
sys.exit(1 if failed else 0)
