package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/examples/chat"
	"github.com/durable-go/durable/examples/counter"
	"github.com/durable-go/durable/examples/ratelimiter"
	"github.com/durable-go/durable/examples/seats"
	"github.com/durable-go/durable/internal/benchapp"
	"github.com/durable-go/durable/internal/httpjson"
	"github.com/durable-go/durable/internal/tracing"
)

// shutdownBudget bounds the drain after SIGINT/SIGTERM.
const shutdownBudget = 8 * time.Second

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", "./data", "data directory")
	addr := fs.String("addr", "127.0.0.1:8787", "listen address")
	app := fs.String("app", "examples", "app to serve: examples, or bench (the peer benchmark's routes)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	slowTurn := fs.Duration("slow-turn", durable.DefaultSlowTurn, "log every turn longer than this (negative: never)")
	adminAddr := fs.String("admin-addr", "", "serve the admin API (/admin/v1) on this address; off when empty")
	adminTokenFlag := fs.String("admin-token", "", "the admin API's bearer token (else $DURABLE_ADMIN_TOKEN, else one generated once and kept in DIR/admin-token)")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof on this address (off when empty; keep it on loopback)")
	maxOpen := fs.Int("max-open-databases", 0, "keep at most this many SQLite databases open (0: a quarter of the open-files limit)")
	idle := fs.Duration("idle-timeout", durable.DefaultIdleTimeout, "evict an instance idle this long")
	hibernate := fs.Duration("hibernate-after", durable.DefaultHibernateAfter, "evict an instance whose only activity is WebSockets after this long")
	otlpEndpoint := fs.String("otlp-endpoint", "", "send OpenTelemetry traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318); off when empty")
	traceSample := fs.Float64("trace-sample", 1, "with --otlp-endpoint: the fraction of traces started here to keep (callers' traceparent decides theirs)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	case "json":
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	default:
		fmt.Fprintf(os.Stderr, "durable serve: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	if *idle <= 0 || *hibernate <= 0 {
		log.Error("durations must be positive", "idle-timeout", *idle, "hibernate-after", *hibernate)
		return 2
	}
	if *maxOpen < 0 {
		log.Error("--max-open-databases must not be negative", "max-open-databases", *maxOpen)
		return 2
	}
	sampleSet := false
	fs.Visit(func(f *flag.Flag) { sampleSet = sampleSet || f.Name == "trace-sample" })
	if sampleSet && *otlpEndpoint == "" {
		fmt.Fprintln(os.Stderr, "durable serve: --trace-sample needs --otlp-endpoint (tracing is off without it)")
		return 2
	}
	cfg := durable.Config{Dir: *dir, IdleTimeout: *idle, HibernateAfter: *hibernate,
		MaxOpenDatabases: *maxOpen, SlowTurn: *slowTurn, Logger: log}
	var tp *sdktrace.TracerProvider
	if *otlpEndpoint != "" {
		var err error
		if tp, err = newTracerProvider(*otlpEndpoint, *traceSample); err != nil {
			fmt.Fprintln(os.Stderr, "durable serve:", err)
			return 2
		}
		cfg.TracerProvider = tp
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(ctx); err != nil {
				log.Warn("flush the last traces", "err", err)
			}
		}()
	}
	rt, err := durable.Open(cfg)
	if err != nil {
		log.Error("open runtime", "dir", *dir, "err", err)
		return 1
	}
	var draining atomic.Bool
	mux := http.NewServeMux()
	switch *app {
	case "examples":
		mountExamples(mux, rt)
		mux.HandleFunc("/", httpjson.NotFound)
	case "bench":
		mux.Handle("/", benchapp.Handler(benchapp.Define(rt)))
	default:
		log.Error("unknown app", "app", *app)
		rt.Close(context.Background())
		return 2
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodGet) {
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", rt.MetricsHandler())
	mux.HandleFunc("/_durable/stats", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodGet) {
			return
		}
		s := rt.Stats()
		httpjson.Write(w, http.StatusOK, map[string]int64{
			"live": s.Live, "open_databases": s.OpenDatabases,
			"websockets": s.WebSockets, "hibernated_websockets": s.HibernatedWebSockets,
		})
	})
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
			httpjson.Error(w, http.StatusServiceUnavailable, "the server is shutting down")
			return
		}
		mux.ServeHTTP(w, r)
	})
	if tp != nil {
		handler = traceHTTP(tracing.New(tp), handler)
		log.Info("tracing", "otlp-endpoint", *otlpEndpoint, "sample", *traceSample)
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			log.Error("pprof listen", "addr", *pprofAddr, "err", err)
			rt.Close(context.Background())
			return 1
		}
	}
	// Signals are caught before the address is printed: a SIGTERM sent as
	// soon as a script sees the address must drain, not kill.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var adminSrv *http.Server
	if *adminAddr != "" {
		token, generated, err := adminToken(*dir, *adminTokenFlag)
		if err != nil {
			log.Error("admin token", "err", err)
			rt.Close(context.Background())
			return 1
		}
		aln, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			log.Error("admin listen", "addr", *adminAddr, "err", err)
			rt.Close(context.Background())
			return 1
		}
		if generated {
			// Printed once, when it is made; it stays in the file.
			log.Warn("admin token generated: it is printed this once and kept in its file", "file", filepath.Join(*dir, adminTokenFile), "token", token)
		}
		adminSrv = &http.Server{Handler: rt.AdminHandler(token), ReadHeaderTimeout: 10 * time.Second}
		go adminSrv.Serve(aln)
		log.Info("admin API serving", "addr", aln.Addr().String(), "storage_browser", "http://"+aln.Addr().String()+"/admin")
		fmt.Printf("admin on %s\n", aln.Addr())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		rt.Close(context.Background())
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("durable serving", "addr", ln.Addr().String(), "dir", *dir, "app", *app)
	// The address on stdout lets scripts and tests use --addr 127.0.0.1:0.
	fmt.Printf("listening on %s\n", ln.Addr())

	code := 0
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-served:
		log.Error("server stopped", "err", err)
		code = 1
	}
	draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("drain requests", "err", err)
	}
	if adminSrv != nil {
		adminSrv.Shutdown(ctx)
	}
	if err := rt.Close(ctx); err != nil {
		log.Error("close runtime", "err", err)
		code = 1
	}
	log.Info("stopped")
	return code
}

// mountExamples serves the example apps at the routes of DESIGN.md §5.
func mountExamples(mux *http.ServeMux, rt *durable.Runtime) {
	counter.Mount(mux, counter.Define(rt))
	chat.Mount(mux, chat.Define(rt))
	ratelimiter.Mount(mux, ratelimiter.Define(rt, nil))
	seats.Mount(mux, seats.Define(rt))
}

// servePprof serves the profiling endpoints on their own listener, never
// on the app's address.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("pprof serving", "addr", ln.Addr().String())
	go http.Serve(ln, mux)
	return nil
}

// adminTokenFile holds the generated admin token in the data directory.
const adminTokenFile = "admin-token"

// adminToken returns the admin API's token: the flag's, else
// $DURABLE_ADMIN_TOKEN, else the one kept in DIR/admin-token, made (32
// random bytes, hex, mode 0600) the first time; generated reports that.
func adminToken(dir, flagValue string) (token string, generated bool, err error) {
	if flagValue != "" {
		if strings.TrimSpace(flagValue) == "" {
			return "", false, errors.New("--admin-token is blank")
		}
		return strings.TrimSpace(flagValue), false, nil
	}
	if v := os.Getenv("DURABLE_ADMIN_TOKEN"); v != "" {
		if strings.TrimSpace(v) == "" {
			return "", false, errors.New("$DURABLE_ADMIN_TOKEN is blank")
		}
		return strings.TrimSpace(v), false, nil
	}
	path := filepath.Join(dir, adminTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, false, nil
		}
		return "", false, fmt.Errorf("%s is empty: delete it to have a new token made", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	buf := make([]byte, 32)
	rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
	token = hex.EncodeToString(buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, err
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return token, true, err
}
