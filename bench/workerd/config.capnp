# workerd configuration for bench/run.sh: worker.js with four SQLite-backed
# Durable Object namespaces, stored on local disk. Run from this directory:
#
#   workerd serve config.capnp --experimental \
#       --directory-path do-data=DIR --socket-addr http=127.0.0.1:PORT
#
# localDisk needs --experimental; the data directory and the address are
# always given on the command line.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "bench", worker = .worker),
    (name = "do-data", disk = (writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:18787", http = (), service = "bench"),
  ],
);

const worker :Workerd.Worker = (
  compatibilityDate = "2025-04-01",
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  durableObjectNamespaces = [
    (className = "Counter", uniqueKey = "durable-bench-counter", enableSql = true),
    (className = "KvCounter", uniqueKey = "durable-bench-kv", enableSql = true),
    (className = "Room", uniqueKey = "durable-bench-room", enableSql = true),
    (className = "AlarmProbe", uniqueKey = "durable-bench-alarm", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-data"),
  bindings = [
    (name = "COUNTER", durableObjectNamespace = "Counter"),
    (name = "KV", durableObjectNamespace = "KvCounter"),
    (name = "ROOM", durableObjectNamespace = "Room"),
    (name = "ALARM", durableObjectNamespace = "AlarmProbe"),
  ],
);
