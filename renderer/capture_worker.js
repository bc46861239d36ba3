// The capture page's sender, on a thread of its own.
//
// A 1.4 MB frame leaves a WebSocket in chunks, and each chunk needs the thread that owns the socket.
// On the page's main thread that thread sits in the GPU read-back most of the time (software GL), so a
// frame took ~100 ms to drain; here it drains while the next frame is drawn. send() copies the bytes,
// so the buffer goes straight back to the page (transferred both ways, never copied by postMessage);
// the page learns how many whole frames still wait in the socket and draws only while fewer than two do.

let socket = null;
let url = null;
let frameSize = 1;
let polling = false;

function connect() {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { socket = ws; postMessage({ type: 'open' }); };
  ws.onclose = () => {
    socket = null;
    postMessage({ type: 'closed' });
    setTimeout(connect, 500);
  };
}

function queued() {
  return socket ? Math.ceil(socket.bufferedAmount / frameSize) : 0;
}

function poll(last) {
  const q = queued();
  if (q !== last) postMessage({ type: 'queued', queued: q });
  if (q > 0) setTimeout(poll, 2, q); else polling = false;
}

onmessage = (ev) => {
  const msg = ev.data;
  if (msg.type === 'connect') {
    url = msg.url;
    connect();
  } else if (msg.type === 'stats') {           // the page's own timings, once a second, as text
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
  } else if (msg.type === 'frame') {
    frameSize = msg.buffer.byteLength;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(msg.buffer);
    const q = queued();
    postMessage({ type: 'sent', buffer: msg.buffer, queued: q }, [msg.buffer]);
    if (q > 0 && !polling) { polling = true; setTimeout(poll, 2, q); }
  }
};
