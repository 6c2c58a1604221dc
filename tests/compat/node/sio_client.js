// A socket.io-client driven over stdin/stdout by the compatibility tests.
//   node sio_client.js URL TOKEN [TRANSPORT]
// stdin:  one JSON command per line: {"emit": EVENT, "data": ..., "ack": N?} or {"close": true}
// stdout: one JSON line per happening: {"connect": true}, {"connect_error": {message, data}},
//         {"event": NAME, "data": ...}, {"ack": N, "data": ...}, {"disconnect": REASON}
"use strict";
const { io } = require("socket.io-client");
const readline = require("node:readline");

const [url, token, transport] = process.argv.slice(2);
const socket = io(url, {
  auth: { token },
  transports: transport ? [transport] : ["websocket"],
  reconnection: false,
});
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

socket.on("connect", () => out({ connect: true, id: socket.id }));
socket.on("connect_error", (err) => out({ connect_error: { message: err.message, data: err.data ?? null } }));
socket.on("disconnect", (reason) => out({ disconnect: reason }));
socket.onAny((event, data) => out({ event, data }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.close) {
    // Let the close packet leave (a long-poll POST) before the process ends.
    socket.close();
    setTimeout(() => process.exit(0), 200);
    return;
  }
  if (command.ack !== undefined) {
    socket.emit(command.emit, command.data, (reply) => out({ ack: command.ack, data: reply }));
  } else {
    socket.emit(command.emit, command.data);
  }
});
