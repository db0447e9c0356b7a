// MQTT.js against the broker: subscribe and publish at QoS 0/1/2 for MQTT
// 3.1, 3.1.1 and 5.0. Prints one line per version; exits 1 on a miss.
// Usage: node mqttjs_roundtrip.js PORT
const mqtt = require('mqtt');

const port = Number(process.argv[2]);
const WAIT_MS = 10000;

function roundTrip(version) {
  const options = (role) => ({
    protocolVersion: version,
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    clientId: `js-${role}-${version}`,
    reconnectPeriod: 0,
  });
  return new Promise((resolve) => {
    const got = [];
    const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, options('sub'));
    let pub;
    let published = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sub.end(true);
      if (pub) pub.end(true);
      resolve(got.sort());
    };
    const timer = setTimeout(finish, WAIT_MS);
    // Finish only when every message arrived AND the publisher's flows completed:
    // ending the publisher mid-flow would fail its pending QoS 2 publish.
    const maybeFinish = () => {
      if (published && got.length === 3) finish();
    };
    sub.on('message', (topic, payload, packet) => {
      got.push(`${topic} ${payload} ${packet.qos}`);
      maybeFinish();
    });
    sub.subscribe('js/#', { qos: 2 }, () => {
      pub = mqtt.connect(`mqtt://127.0.0.1:${port}`, options('pub'));
      pub.on('connect', async () => {
        try {
          for (const qos of [0, 1, 2]) await pub.publishAsync(`js/${qos}`, `m${qos}`, { qos });
          published = true;
          maybeFinish();
        } catch (error) {
          console.log(`publish failed: ${error}`);
          finish();
        }
      });
    });
  });
}

(async () => {
  let failed = false;
  const expected = ['js/0 m0 0', 'js/1 m1 1', 'js/2 m2 2'];
  for (const [version, name] of [[3, '3.1'], [4, '3.1.1'], [5, '5.0']]) {
    const got = await roundTrip(version);
    const ok = JSON.stringify(got) === JSON.stringify(expected);
    failed ||= !ok;
    console.log(`mqtt.js ${name}: ${ok ? 'ok' : `expected ${expected}, got ${got}`}`);
  }
  process.exit(failed ? 1 : 0);
})();
