// MQTT.js in headless Chromium (the browser build, node_modules/mqtt/dist/mqtt.min.js)
// over WebSocket: connects to ws://127.0.0.1:PORT/mqtt, subscribes to
// browser/#, prints "subscribed", then prints "received TOPIC PAYLOAD" for the
// first message (which the Rust test publishes with mosquitto_pub).
// Usage: node browser_mqttjs.js WS_PORT [CHROMIUM_PATH]
const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require('playwright-core');

const port = Number(process.argv[2]);
const executablePath = process.argv[3] || '/usr/bin/chromium';
const WAIT_MS = 30000;

// The page comes from a loopback origin, as a page served beside the broker
// would: Chromium blocks a public or opaque origin (about:blank) from opening
// a WebSocket to a loopback address (Local Network Access).
function servePage() {
  const script = fs.readFileSync(path.join(__dirname, 'node_modules/mqtt/dist/mqtt.min.js'));
  const server = http.createServer((req, res) => {
    if (req.url === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(script);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>mqtt</title><script src="/mqtt.min.js"></script>');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const site = await servePage();
  // Chromium refuses to run as root with its sandbox on.
  const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath, args, headless: true });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.error(`page: ${m.text()}`));
    await page.goto(`http://127.0.0.1:${site.address().port}/`);
    await page.evaluate(
      ({ url, waitMs }) =>
        new Promise((resolve, reject) => {
          setTimeout(() => reject(new Error('no SUBACK in time')), waitMs);
          const client = mqtt.connect(url, { clientId: 'chromium-mqttjs', protocolVersion: 5, reconnectPeriod: 0 });
          window.received = new Promise((got) => {
            client.on('message', (topic, payload) => got(`${topic} ${payload.toString()}`));
          });
          client.on('error', (e) => reject(new Error(String(e))));
          client.on('connect', () =>
            client.subscribe('browser/#', { qos: 1 }, (err) => (err ? reject(new Error(String(err))) : resolve())),
          );
        }),
      { url: `ws://127.0.0.1:${port}/mqtt`, waitMs: WAIT_MS },
    );
    console.log('subscribed');
    const message = await page.evaluate(
      (waitMs) => Promise.race([window.received, new Promise((_, no) => setTimeout(() => no(new Error('no message')), waitMs))]),
      WAIT_MS,
    );
    console.log(`received ${message}`);
  } finally {
    await browser.close();
    site.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
