// The peer side of bench/run.sh: workerd serving the same routes as
// `durable serve --app bench` (internal/benchapp), so one load client
// drives both. Every object class is SQLite-backed (config.capnp).
//
//   POST /counter/<name>/inc     Counter.increment(): SQL upsert ... RETURNING
//   GET  /counter/<name>         Counter.current()
//   POST /kv/<name>/inc          KvCounter.increment(): storage.get + storage.put
//   PUT  /kv/<name>/<key>        KvCounter.putValue(key, body) -> "stored"
//   GET  /kv/<name>/<key>        KvCounter.getValue(key), 404 "not found" if none
//   GET  /room/<name>/ws?mode=echo|broadcast   hibernatable WebSocket
//   GET  /room/<name>/count      sockets in the room
//   POST /alarm/<name>/set?ms=N  AlarmProbe.arm(N)
//   GET  /alarm/<name>           AlarmProbe.report(): JSON incl. lateByMs
//   GET  /health                 "ok"
import { DurableObject } from "cloudflare:workers";

const UPSERT =
  "INSERT INTO counters (id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  }
  increment() {
    return this.ctx.storage.sql.exec(UPSERT).one().n;
  }
  current() {
    const row = this.ctx.storage.sql.exec("SELECT n FROM counters WHERE id = 1").toArray()[0];
    return row ? row.n : 0;
  }
}

export class KvCounter extends DurableObject {
  async increment() {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return n;
  }
  async putValue(key, value) {
    await this.ctx.storage.put(key, value);
    return true;
  }
  async getValue(key) {
    const v = await this.ctx.storage.get(key);
    return v === undefined ? null : v;
  }
}

export class Room extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/count")) {
      return new Response(String(this.ctx.getWebSockets().length));
    }
    if (request.headers.get("Upgrade") !== "websocket") {
      return new Response("expected websocket", { status: 426 });
    }
    const mode = url.searchParams.get("mode") === "broadcast" ? "broadcast" : "echo";
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [mode]);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) {
    const targets = this.ctx.getTags(ws).includes("broadcast") ? this.ctx.getWebSockets("broadcast") : [ws];
    for (const peer of targets) {
      try {
        peer.send(message);
      } catch (_) {
        // a peer that is closing is skipped
      }
    }
  }
  webSocketClose(ws, code, reason) {
    try {
      ws.close(code, reason);
    } catch (_) {
      // already closed
    }
  }
  webSocketError(ws) {
    try {
      ws.close(1011, "error");
    } catch (_) {
      // already closed
    }
  }
}

export class AlarmProbe extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, set_at REAL, scheduled_for REAL, fired_at REAL, fires INTEGER NOT NULL DEFAULT 0)"
    );
  }
  async arm(ms) {
    const setAt = Date.now();
    const scheduledFor = setAt + ms;
    this.ctx.storage.sql.exec(
      "INSERT INTO probe (id, set_at, scheduled_for, fired_at, fires) VALUES (1, ?, ?, NULL, 0) " +
        "ON CONFLICT(id) DO UPDATE SET set_at = excluded.set_at, scheduled_for = excluded.scheduled_for, fired_at = NULL, fires = 0",
      setAt,
      scheduledFor
    );
    await this.ctx.storage.setAlarm(scheduledFor);
    return { setAt, scheduledFor };
  }
  async alarm() {
    this.ctx.storage.sql.exec("UPDATE probe SET fired_at = ?, fires = fires + 1 WHERE id = 1", Date.now());
  }
  async report() {
    const pendingAlarm = await this.ctx.storage.getAlarm();
    const row = this.ctx.storage.sql
      .exec("SELECT set_at, scheduled_for, fired_at, fires FROM probe WHERE id = 1")
      .toArray()[0];
    if (!row) return { armed: false, firedAt: null, fires: 0, lateByMs: null, pendingAlarm };
    return {
      armed: true,
      setAt: row.set_at,
      scheduledFor: row.scheduled_for,
      firedAt: row.fired_at,
      fires: row.fires,
      lateByMs: row.fired_at === null ? null : row.fired_at - row.scheduled_for,
      pendingAlarm,
    };
  }
}

const text = (body, status = 200) => new Response(body, { status });
const notFound = () => text("not found", 404);

async function route(request, env) {
  const url = new URL(request.url);
  const [kind, name, op] = url.pathname.split("/").filter((p) => p !== "");
  if (kind === "health") return text("ok");
  if (!name) return notFound();
  const { method } = request;
  switch (kind) {
    case "counter": {
      const stub = env.COUNTER.get(env.COUNTER.idFromName(name));
      if (method === "POST" && op === "inc") return text(String(await stub.increment()));
      if (method === "GET" && !op) return text(String(await stub.current()));
      return notFound();
    }
    case "kv": {
      const stub = env.KV.get(env.KV.idFromName(name));
      if (method === "POST" && op === "inc") return text(String(await stub.increment()));
      if (!op) return notFound();
      if (method === "PUT") {
        await stub.putValue(op, await request.text());
        return text("stored");
      }
      if (method === "GET") {
        const v = await stub.getValue(op);
        return v === null ? notFound() : text(String(v));
      }
      return notFound();
    }
    case "room":
      return env.ROOM.get(env.ROOM.idFromName(name)).fetch(request);
    case "alarm": {
      const stub = env.ALARM.get(env.ALARM.idFromName(name));
      if (method === "POST" && op === "set") {
        const ms = Number(url.searchParams.get("ms") ?? "5");
        if (!Number.isFinite(ms) || ms < 0) return text("ms must be a number of milliseconds from 0 to one year", 400);
        return Response.json(await stub.arm(ms));
      }
      if (method === "GET" && !op) return Response.json(await stub.report());
      return notFound();
    }
    default:
      return notFound();
  }
}

export default { fetch: route };
